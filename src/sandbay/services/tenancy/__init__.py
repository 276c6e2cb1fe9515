"""Organizations, API keys, authentication, quotas and usage."""
