"""Prefixed, time-ordered identifiers (`env_` + UUIDv7 hex, as the Qoder brief shows)."""

import re

from uuid6 import uuid7

ENVIRONMENT = "env"
ORGANIZATION = "org"
API_KEY = "key"
WORK_ITEM = "work"
SSH_CREDENTIAL = "sshc"
PREVIEW_TOKEN = "prvt"  # noqa: S105  (an id prefix)
SNAPSHOT = "snap"

_ID_RE = re.compile(r"^(?P<prefix>[a-z]+)_[0-9a-f]{32}$")


def new_id(prefix: str) -> str:
    """A new id; ids sort by creation time, which list pagination relies on."""
    return f"{prefix}_{uuid7().hex}"


def has_prefix(value: str, prefix: str) -> bool:
    """True when `value` is shaped like an id of that kind (it may still not exist)."""
    match = _ID_RE.match(value)
    return match is not None and match.group("prefix") == prefix
