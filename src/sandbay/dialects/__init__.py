"""Seed dialects: each platform's documented paths and shapes, as thin adapters over
the same services as the native API."""
