"""The host name a connection names before any byte reaches its destination: the
server name (SNI) of a TLS ClientHello, or the `Host` of an HTTP/1 request. Parsed
from what the client sent first, without consuming it."""

from dataclasses import dataclass
from enum import StrEnum

#: More than this before the name is known, and the connection is not one we read.
MAX_PEEK = 16 * 1024
_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"PATCH ", b"OPTIONS ", b"CONNECT ")


class Protocol(StrEnum):
    TLS = "tls"
    HTTP = "http"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Sniffed:
    protocol: Protocol
    name: str | None = None


def sniff(data: bytes) -> Sniffed | None:
    """What `data` (the first bytes a client sent) says; None while more is needed."""
    if not data:
        return None
    if data[0] == 0x16:
        return _tls(data)
    if any(m.startswith(data[: len(m)]) for m in _METHODS):
        return _http(data)
    return Sniffed(Protocol.OTHER)


def _http(data: bytes) -> Sniffed | None:
    if not any(data.startswith(m) for m in _METHODS):
        return None if len(data) < 8 else Sniffed(Protocol.OTHER)
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None if len(data) < MAX_PEEK else Sniffed(Protocol.HTTP)
    for line in data[:end].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"host":
            host = value.strip().decode("latin-1")
            if host.startswith("["):  # an IPv6 literal
                return Sniffed(Protocol.HTTP, host.partition("]")[0][1:])
            return Sniffed(Protocol.HTTP, host.rpartition(":")[0] if ":" in host else host)
    return Sniffed(Protocol.HTTP)


def _tls(data: bytes) -> Sniffed | None:
    if len(data) < 5:
        return None
    length = int.from_bytes(data[3:5], "big")
    if len(data) < 5 + length:
        return None if 5 + length <= MAX_PEEK else Sniffed(Protocol.TLS)
    try:
        return Sniffed(Protocol.TLS, _server_name(data[5 : 5 + length]))
    except (IndexError, ValueError, UnicodeDecodeError):
        return Sniffed(Protocol.TLS)


def _server_name(hello: bytes) -> str | None:
    if hello[0] != 0x01:  # not a ClientHello
        return None
    pos = 4 + 2 + 32  # handshake header, client version, random
    pos += 1 + hello[pos]  # session id
    pos += 2 + int.from_bytes(hello[pos : pos + 2], "big")  # cipher suites
    pos += 1 + hello[pos]  # compression methods
    end = pos + 2 + int.from_bytes(hello[pos : pos + 2], "big")
    pos += 2
    while pos + 4 <= end:
        kind = int.from_bytes(hello[pos : pos + 2], "big")
        size = int.from_bytes(hello[pos + 2 : pos + 4], "big")
        body = hello[pos + 4 : pos + 4 + size]
        if kind == 0:  # server_name: a list of (type, name); type 0 is a host name
            i = 2
            while i + 3 <= len(body):
                name_len = int.from_bytes(body[i + 1 : i + 3], "big")
                if body[i] == 0:
                    return body[i + 3 : i + 3 + name_len].decode("ascii")
                i += 3 + name_len
            return None
        pos += 4 + size
    return None
