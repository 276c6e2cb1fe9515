"""Reaching environments from outside: SSH credentials, previews, network policy."""
