"""The Litestar app: REST controllers, WebSocket handlers, the error table."""
