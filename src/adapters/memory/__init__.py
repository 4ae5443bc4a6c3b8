"""In-memory adapters: a store with real transactions, an in-process broker, recording and logging push senders."""
