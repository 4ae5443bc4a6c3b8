"""Rate limiters: in process (the embedded default) and across instances through Redis."""
