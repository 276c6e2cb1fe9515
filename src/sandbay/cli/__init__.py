"""The `sandbay` command line."""
