"""Routes of egress by name: the organization's secrets."""
