"""Use cases: lifecycle, keys, organizations, events. Services flush, never commit;
the caller's session (one per request) commits."""
