"""The name a connection carries, read from its first bytes: a real ClientHello (made
by Python's own TLS client) and HTTP requests."""

import ssl

import pytest

from sandbay.runtime.egress.sniff import Protocol, Sniffed, sniff


def _client_hello(server_name: str | None) -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_the_server_name_of_a_client_hello() -> None:
    hello = _client_hello("api.example.com")
    assert sniff(hello) == Sniffed(Protocol.TLS, "api.example.com")
    # Partial: more is needed, never a guess.
    assert sniff(hello[:3]) is None and sniff(hello[: len(hello) // 2]) is None


def test_a_client_hello_without_a_name() -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    assert sniff(outgoing.read()) == Sniffed(Protocol.TLS, None)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", Sniffed(Protocol.HTTP, "a.example")),
        (
            b"POST /x HTTP/1.1\r\nhost:  b.example \r\nX: y\r\n\r\n",
            Sniffed(Protocol.HTTP, "b.example"),
        ),
        (b"GET / HTTP/1.0\r\n\r\n", Sniffed(Protocol.HTTP, None)),
        (b"GET / HTTP/1.1\r\nHost: a", None),
        (b"GE", None),
        (b"SSH-2.0-OpenSSH_9.2\r\n", Sniffed(Protocol.OTHER)),
        (b"\x00\x01garbage", Sniffed(Protocol.OTHER)),
    ],
)
def test_http_requests_and_the_rest(data: bytes, expected: Sniffed | None) -> None:
    assert sniff(data) == expected
