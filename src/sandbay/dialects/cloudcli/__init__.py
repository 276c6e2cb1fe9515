"""CloudCLI's `/api/v1` environments and agents."""
