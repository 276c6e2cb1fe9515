"""The HTTPS preview proxy: routing, HTTP and WebSocket relays."""
