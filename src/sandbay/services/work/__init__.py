"""Work items on self-hosted environments and the worker protocol."""
