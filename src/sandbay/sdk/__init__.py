"""A small synchronous Python client for the native API (used by the CLI)."""

from sandbay.sdk.client import ApiError, Client

__all__ = ["ApiError", "Client"]
