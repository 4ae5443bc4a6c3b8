"""The outside edges: the HTTP/WebSocket app, the CLI and the composition root that wires adapters."""
