"""The Docker Engine provider and its abilities."""
