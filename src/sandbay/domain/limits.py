"""Bounds of raw input that no shape names: what a database integer, the engine's
clock and a JSON parser can hold. Past them a request is a 400, never a 5xx."""

#: Largest id, cursor, offset or count a database BIGINT holds.
MAX_INT64 = 2**63 - 1
#: Latest moment a `since` may name (9999-12-31T23:59:59Z); the engine takes no later.
MAX_UNIX_SECONDS = 253_402_300_799
#: Deeper JSON than this is refused: no request shape nests past a handful.
MAX_JSON_DEPTH = 64
