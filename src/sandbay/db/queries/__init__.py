"""All SQL, by resource: services compose these, never write `select`."""
