"""Routers of the native API, one module per resource."""
