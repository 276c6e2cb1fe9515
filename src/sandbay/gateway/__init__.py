"""Access from outside, next to the API: the SSH gateway and the HTTP(S) preview
proxy. Adapters over the services, like `api`."""
