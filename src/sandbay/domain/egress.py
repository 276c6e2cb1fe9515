"""Egress by name: which host names an environment may reach, and which secrets the
platform's egress proxy puts into requests to which hosts. Pure rules; the proxy and
resolver that enforce them live in `sandbay.gateway.egress`.

A pattern is a host name (`pypi.org`) or a wildcard of one label (`*.pypi.org`,
which matches every name under `pypi.org` but not `pypi.org` itself), compared
case-insensitively without a trailing dot. Ports are not part of a pattern."""

import re
from dataclasses import dataclass, field

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
#: What an environment variable holding a secret's placeholder may be called.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: A secret's name (Daytona's rule).
SECRET_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_-]*$")
MAX_PATTERNS = 256
#: Where the environment's egress CA goes: the system bundle (Debian's, Alpine's) and
#: the file `update-ca-certificates` reads; and the variables that point clients
#: carrying their own bundle (Python requests/certifi, Node, Go, OpenSSL) at them, set
#: when the environment has secrets (the only connections the proxy re-encrypts).
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CA_FILE = "/usr/local/share/ca-certificates/sandbay-egress.crt"
TRUST_VARIABLES = {
    "REQUESTS_CA_BUNDLE": CA_BUNDLE,
    "SSL_CERT_FILE": CA_BUNDLE,
    "NODE_EXTRA_CA_CERTS": CA_FILE,
}


def normalize_name(name: str) -> str:
    """A host name as compared: lower case, IDNA-encoded, without the trailing dot."""
    name = name.strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def check_pattern(pattern: str) -> str:
    """The pattern normalized; ValueError saying why it is not one."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError("a domain pattern must be a non-empty string")
    wildcard = pattern.strip().startswith("*.")
    name = normalize_name(pattern.strip()[2:] if wildcard else pattern)
    if ":" in name or "/" in name:
        raise ValueError(f"{pattern!r}: a domain pattern has no port, scheme or path")
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{pattern!r} is not a host name or a `*.` wildcard (such as `*.example.com`)"
        )
    if wildcard and len(labels) < 2:
        raise ValueError(f"{pattern!r}: a wildcard needs a domain of two labels or more")
    return f"*.{name}" if wildcard else name


def check_patterns(patterns: list[str]) -> list[str]:
    """Each pattern normalized, duplicates dropped, order kept."""
    if len(patterns) > MAX_PATTERNS:
        raise ValueError(f"at most {MAX_PATTERNS} domain patterns")
    return list(dict.fromkeys(check_pattern(p) for p in patterns))


def matches(name: str, pattern: str) -> bool:
    """True if the (normalized) `name` is what the (normalized) `pattern` names."""
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return name == pattern


def matches_any(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    return any(matches(name, p) for p in patterns)


@dataclass(frozen=True, slots=True)
class EgressSecret:
    """A secret as the proxy uses it: the environment sees only `placeholder`, the
    proxy swaps in `value` on requests to `hosts` (every allowed host when empty)."""

    name: str
    placeholder: str
    value: str = field(repr=False)
    hosts: tuple[str, ...] = ()

    def bound_to(self, name: str) -> bool:
        return not self.hosts or matches_any(name, self.hosts)


@dataclass(frozen=True, slots=True)
class DomainPolicy:
    """What the proxy decides by name. With an allow list, only names on it (and not on
    the deny list) are reachable; with only a deny list, every name but those."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    secrets: tuple[EgressSecret, ...] = ()

    @property
    def active(self) -> bool:
        """True when traffic must go through the proxy at all."""
        return bool(self.allow or self.deny or self.secrets)

    @property
    def default_allow(self) -> bool:
        return not self.allow

    def allows(self, name: str) -> bool:
        name = normalize_name(name)
        if matches_any(name, self.deny):
            return False
        return self.default_allow or matches_any(name, self.allow)

    def secrets_for(self, name: str) -> tuple[EgressSecret, ...]:
        """The secrets whose placeholder is swapped on requests to `name`."""
        name = normalize_name(name)
        return tuple(s for s in self.secrets if s.bound_to(name))
