"""The egress gateway: for each environment under a domain policy, a DNS responder
and a TCP proxy listening on loopback inside the environment's own network
namespace, where its iptables rules redirect every DNS query and every outgoing TCP
connection (`runtime/docker/network.py`). The sockets are the platform's, served by
this process from the host: nothing inside the environment can change them.

A connection is let through only when the name it carries (TLS SNI, or HTTP `Host`)
is allowed and its original destination is an address this resolver gave that
environment for that name; then the proxy connects from the host to that address.
Where a secret is bound to the name, the proxy reads the requests (terminating TLS
with the environment's own CA, and re-encrypting to the real host with full
verification) and swaps each secret's placeholder for its value in the request
line and headers. Refusals are reported through `on_refusal`, a few per minute per
environment."""

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import h11

from sandbay.domain.egress import DomainPolicy, EgressSecret, normalize_name
from sandbay.runtime.egress.certs import EnvironmentCA, environment_ca, server_context
from sandbay.runtime.egress.netns import bound_socket, original_destination
from sandbay.runtime.egress.resolver import TTL_S, Resolver
from sandbay.runtime.egress.sniff import MAX_PEEK, Protocol, Sniffed, sniff

log = logging.getLogger(__name__)
_CHUNK = 256 * 1024
_FIRST_BYTES_S = 10.0
_CONNECT_S = 10.0
#: Refusals recorded per environment per minute; the rest are counted in the next one.
REFUSALS_PER_MINUTE = 20


@dataclass(frozen=True, slots=True)
class Refusal:
    environment_id: str
    kind: str  # "dns" or "connect"
    reason: str
    name: str | None = None
    address: str | None = None
    port: int | None = None
    suppressed: int = 0


@dataclass(frozen=True, slots=True)
class EgressPorts:
    """Where, on the namespace's loopback, the proxy and the resolver listen."""

    proxy: int
    dns: int


@dataclass
class _Listeners:
    netns: tuple[int, int]
    ports: EgressPorts
    sock: socket.socket
    dns: asyncio.DatagramTransport
    accepting: asyncio.Task[None] | None = None


@dataclass
class _Budget:
    window: float = 0.0
    used: int = 0
    suppressed: int = 0


class EgressGateway:
    def __init__(
        self,
        resolver: Resolver,
        *,
        seed: bytes,
        upstream_ca: str | None = None,
        on_refusal: Callable[[Refusal], Awaitable[None]] | None = None,
    ) -> None:
        self.resolver = resolver
        self._seed = seed
        self._upstream = ssl.create_default_context()
        if upstream_ca:
            self._upstream.load_verify_locations(cafile=upstream_ca)
        self._upstream.set_alpn_protocols(["http/1.1"])
        self.on_refusal = on_refusal
        #: Reads an environment's policy when none was set (see `_policy`).
        self.policy_source: Callable[[str], Awaitable[DomainPolicy | None]] | None = None
        self._policies: dict[str, DomainPolicy] = {}
        self._listeners: dict[str, _Listeners] = {}
        self._cas: dict[str, EnvironmentCA] = {}
        self._contexts: dict[tuple[str, str], ssl.SSLContext] = {}
        self._budgets: dict[str, _Budget] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- control ------------------------------------------------------------------

    def set_policy(self, environment_id: str, policy: DomainPolicy) -> None:
        """Takes effect for the next query and connection (no restart)."""
        self._policies[environment_id] = policy

    async def _policy(self, environment_id: str) -> DomainPolicy | None:
        """The environment's policy: as last set, else asked of `policy_source` (a
        start the reconciler made, before the enforcer has handed it over)."""
        policy = self._policies.get(environment_id)
        if policy is None and self.policy_source is not None:
            try:
                policy = await self.policy_source(environment_id)
            except Exception:
                log.exception("cannot read the egress policy of %s", environment_id)
                return None
            if policy is not None and environment_id in self._listeners:
                self._policies.setdefault(environment_id, policy)
        return policy

    def ca_pem(self, environment_id: str) -> bytes:
        """The environment's CA certificate, for its trust store."""
        return self._ca(environment_id).pem

    async def listen(self, environment_id: str, netns_fd: int) -> EgressPorts:
        """Listen in the namespace `netns_fd` refers to (again only when it is a new
        namespace: a restarted container has one)."""
        stat = os.fstat(netns_fd)
        netns = (stat.st_dev, stat.st_ino)
        async with self._lock:
            current = self._listeners.get(environment_id)
            if current is not None and current.netns == netns:
                return current.ports
            if current is not None:
                self._close(current)
            loop = asyncio.get_running_loop()
            tcp = await asyncio.to_thread(bound_socket, netns_fd, socket.SOCK_STREAM)
            try:
                udp = await asyncio.to_thread(bound_socket, netns_fd, socket.SOCK_DGRAM)
            except BaseException:
                tcp.close()
                raise
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Dns(self, environment_id), sock=udp
            )
            listeners = _Listeners(
                netns, EgressPorts(tcp.getsockname()[1], udp.getsockname()[1]), tcp, transport
            )
            # Accepted by hand, not by a server: the first bytes are peeked, not read.
            listeners.accepting = asyncio.ensure_future(self._accept_loop(environment_id, tcp))
            self._listeners[environment_id] = listeners
            return listeners.ports

    def release(self, environment_id: str) -> None:
        """Stop serving the environment (it stopped, or its policy was lifted)."""
        current = self._listeners.pop(environment_id, None)
        if current is not None:
            self._close(current)
        self._policies.pop(environment_id, None)
        self._budgets.pop(environment_id, None)
        self._cas.pop(environment_id, None)
        for key in [k for k in self._contexts if k[0] == environment_id]:
            del self._contexts[key]
        self.resolver.forget(environment_id)

    def serving(self) -> list[str]:
        return list(self._listeners)

    async def close(self) -> None:
        for environment_id in list(self._listeners):
            self.release(environment_id)
        self._contexts.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _close(self, listeners: _Listeners) -> None:
        listeners.dns.close()
        if listeners.accepting is not None:
            listeners.accepting.cancel()
        listeners.sock.close()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ca(self, environment_id: str) -> EnvironmentCA:
        ca = self._cas.get(environment_id)
        if ca is None:
            ca = self._cas[environment_id] = environment_ca(self._seed, environment_id)
        return ca

    # -- refusals ------------------------------------------------------------------

    def _refuse(self, refusal: Refusal) -> None:
        log.info(
            "egress refused for %s: %s (%s %s:%s)",
            refusal.environment_id,
            refusal.reason,
            refusal.name,
            refusal.address,
            refusal.port,
        )
        if self.on_refusal is None:
            return
        budget = self._budgets.setdefault(refusal.environment_id, _Budget())
        now = time.monotonic()
        if now - budget.window >= 60:
            budget.window, budget.used = now, 0
        if budget.used >= REFUSALS_PER_MINUTE:
            budget.suppressed += 1
            return
        budget.used += 1
        suppressed, budget.suppressed = budget.suppressed, 0
        self._spawn(self._report(dataclasses.replace(refusal, suppressed=suppressed)))

    async def _report(self, refusal: Refusal) -> None:
        assert self.on_refusal is not None
        try:
            await self.on_refusal(refusal)
        except Exception:
            log.exception("cannot record an egress refusal")

    # -- DNS -----------------------------------------------------------------------

    async def answer(self, environment_id: str, wire: bytes) -> bytes | None:
        """The answer to one DNS query from the environment (None: not a query)."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name = normalize_name(question.name.to_text(omit_final_dot=True))
        policy = await self._policy(environment_id)
        if policy is None or not policy.allows(name):
            response.set_rcode(dns.rcode.NXDOMAIN)
            self._refuse(Refusal(environment_id, "dns", "name not allowed", name))
            return response.to_wire()
        if question.rdtype == dns.rdatatype.A:
            addresses = await self.resolver.resolve(environment_id, name)
            if not addresses:
                response.set_rcode(dns.rcode.NXDOMAIN)
            else:
                response.answer.append(
                    dns.rrset.from_text_list(
                        question.name, TTL_S, dns.rdataclass.IN, dns.rdatatype.A, addresses
                    )
                )
        # Other types (AAAA included: egress is IPv4 through the proxy) answer empty.
        return response.to_wire()

    # -- TCP -----------------------------------------------------------------------

    async def _accept_loop(self, environment_id: str, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(listener)
            except OSError:
                return
            conn.setblocking(False)
            self._spawn(self._serve(environment_id, conn))

    async def _serve(self, environment_id: str, conn: socket.socket) -> None:
        try:
            await self._handle(environment_id, conn)
        except (
            OSError,
            ssl.SSLError,
            TimeoutError,
            h11.ProtocolError,
            asyncio.IncompleteReadError,
        ):
            pass
        except Exception:
            log.exception("egress connection of %s failed", environment_id)
        finally:
            conn.close()

    async def _handle(self, environment_id: str, conn: socket.socket) -> None:
        try:
            address, port = original_destination(conn)
        except OSError:
            return
        if address.startswith("127."):  # straight at the proxy: not a redirected connection
            return
        sniffed = await _peek(conn)
        policy = await self._policy(environment_id)
        reason = self._verdict(environment_id, policy, sniffed, address)
        if reason is not None or policy is None:
            self._refuse(
                Refusal(
                    environment_id, "connect", reason or "no policy", sniffed.name, address, port
                )
            )
            if sniffed.protocol is Protocol.HTTP:
                with contextlib.suppress(OSError):
                    conn.send(_forbidden(reason or "no policy"))
            return
        name = normalize_name(sniffed.name) if sniffed.name else None
        secrets = policy.secrets_for(name) if name else ()
        # Plain HTTP is always read request by request, so a later request on the same
        # connection cannot name another host (421); TLS is read only for secrets.
        readable = sniffed.protocol is Protocol.HTTP or (
            secrets and sniffed.protocol is Protocol.TLS
        )
        if readable and name is not None:
            await self._rewrite(environment_id, conn, sniffed, name, address, port, secrets)
        else:
            await self._splice(conn, address, port)

    def _verdict(
        self, environment_id: str, policy: DomainPolicy | None, sniffed: Sniffed, address: str
    ) -> str | None:
        """Why the connection is refused, or None to let it through."""
        if policy is None:
            return "no policy"
        if sniffed.name is None:
            if not policy.default_allow:
                return "no host name (TLS SNI or HTTP Host) on a connection"
            denied = [
                n for n in self.resolver.names_for(environment_id, address) if not policy.allows(n)
            ]
            return f"address of a denied name ({denied[0]})" if denied else None
        name = normalize_name(sniffed.name)
        if not policy.allows(name):
            return "name not allowed"
        must_match = not policy.default_allow or bool(policy.secrets_for(name))
        if must_match and not self.resolver.given(environment_id, name, address):
            return "address not resolved for that name by the platform"
        return None

    async def _splice(self, conn: socket.socket, address: str, port: int) -> None:
        upstream = await asyncio.wait_for(asyncio.open_connection(address, port), _CONNECT_S)
        client = await _streams(conn)
        await _pipe_both(client, upstream)

    async def _rewrite(
        self,
        environment_id: str,
        conn: socket.socket,
        sniffed: Sniffed,
        name: str,
        address: str,
        port: int,
        secrets: tuple[EgressSecret, ...],
    ) -> None:
        tls = sniffed.protocol is Protocol.TLS
        context = self._server_context(environment_id, name) if tls else None
        client = await _streams(conn, context)
        try:
            upstream = await asyncio.wait_for(
                asyncio.open_connection(
                    address,
                    port,
                    ssl=self._upstream if tls else None,
                    server_hostname=name if tls else None,
                ),
                _CONNECT_S,
            )
        except ssl.SSLCertVerificationError as exc:
            self._refuse(
                Refusal(
                    environment_id,
                    "connect",
                    f"upstream TLS: {exc.verify_message}",
                    name,
                    address,
                    port,
                )
            )
            await _answer(
                client[1], h11.Connection(h11.SERVER), 502, f"upstream TLS: {exc.verify_message}"
            )
            return
        swaps = {s.placeholder.encode(): s.value.encode() for s in secrets}
        try:
            await _exchange(client, upstream, name, swaps)
        finally:
            for _, writer in (client, upstream):
                writer.close()

    def _server_context(self, environment_id: str, name: str) -> ssl.SSLContext:
        key = (environment_id, name)
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = server_context(self._ca(environment_id), name)
        return context


class _Dns(asyncio.DatagramProtocol):
    def __init__(self, gateway: EgressGateway, environment_id: str) -> None:
        self._gateway = gateway
        self._environment_id = environment_id
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._gateway._spawn(self._reply(data, addr))

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = await self._gateway.answer(self._environment_id, data)
        if answer is not None and self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(answer, addr)


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _peek(conn: socket.socket) -> Sniffed:
    """What the connection's first bytes say, read without consuming them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _FIRST_BYTES_S
    seen = -1
    while True:
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(conn.fileno(), _settle, ready)
        try:
            await asyncio.wait_for(ready, max(0.0, deadline - loop.time()))
        finally:
            loop.remove_reader(conn.fileno())
        data = conn.recv(MAX_PEEK, socket.MSG_PEEK)
        found = sniff(data)
        if found is not None:
            return found
        if not data or len(data) >= MAX_PEEK:
            return Sniffed(Protocol.OTHER)
        if len(data) == seen:  # nothing new yet: the socket stays readable while we peek
            await asyncio.sleep(0.005)
            if loop.time() > deadline:
                raise TimeoutError
        seen = len(data)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _streams(conn: socket.socket, context: ssl.SSLContext | None = None) -> Streams:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_PEEK * 4)
    protocol = asyncio.StreamReaderProtocol(reader)
    transport, _ = await loop.connect_accepted_socket(
        lambda: protocol,
        conn,
        ssl=context,
        ssl_handshake_timeout=_FIRST_BYTES_S if context else None,
    )
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, ssl.SSLError):
        writer.close()


async def _pipe_both(a: Streams, b: Streams) -> None:
    try:
        await asyncio.gather(_pipe(a[0], b[1]), _pipe(b[0], a[1]))
    finally:
        a[1].close()
        b[1].close()


def _forbidden(reason: str) -> bytes:
    body = f"refused by the environment's egress policy: {reason}\n".encode()
    head = (
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _swap(value: bytes, swaps: Mapping[bytes, bytes]) -> bytes:
    for placeholder, secret in swaps.items():
        if placeholder in value:
            value = value.replace(placeholder, secret)
    return value


async def _event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(_CHUNK))


async def _answer(
    writer: asyncio.StreamWriter, conn: h11.Connection, status: int, text: str
) -> None:
    body = (text + "\n").encode()
    headers = [
        ("content-type", "text/plain"),
        ("content-length", str(len(body))),
        ("connection", "close"),
    ]
    with contextlib.suppress(h11.LocalProtocolError, OSError):
        writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
        writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()


#: Request bodies up to this size (with a Content-Length, not compressed) are read
#: whole and get their placeholders swapped; larger or chunked ones stream unchanged.
SWAP_BODY_LIMIT = 1024 * 1024


async def _small_body(
    server: h11.Connection, reader: asyncio.StreamReader, request: h11.Request
) -> bytes | None:
    """The whole body of `request` when it is small enough to swap in, else None
    (and nothing of it read)."""
    fields = dict(request.headers)
    length = fields.get(b"content-length")
    encoding = fields.get(b"content-encoding", b"identity").strip().lower()
    if length is None or not length.isdigit() or encoding != b"identity":
        return None
    if int(length) > SWAP_BODY_LIMIT:
        return None
    chunks = []
    while True:
        part = await _event(server, reader)
        if isinstance(part, h11.Data):
            chunks.append(part.data)
        elif isinstance(part, h11.EndOfMessage):
            return b"".join(chunks)
        else:
            raise h11.RemoteProtocolError("the request ended before its body")


class _Scrubber:
    """Puts the placeholders back where an answer carries a secret's value (a server
    that echoes a request's headers), so the value does not reach the environment that
    way either. Bodies are rewritten only when they are not compressed; their length
    then changes, so they go chunked."""

    def __init__(self, swaps: Mapping[bytes, bytes], response: h11.Response, method: bytes) -> None:
        self._back = {value: placeholder for placeholder, value in swaps.items() if value}
        self._keep = max((len(v) for v in self._back), default=1) - 1
        self._carry = b""
        headers = [(k, _swap(v, self._back)) for k, v in response.headers]
        encoding = next((v for k, v in headers if k == b"content-encoding"), b"identity")
        bodiless = method == b"HEAD" or response.status_code in (204, 304)
        self._body = bool(self._back) and encoding.strip().lower() == b"identity" and not bodiless
        if self._body:
            headers = [(k, v) for k, v in headers if k != b"content-length"]
        self.response = h11.Response(
            status_code=response.status_code, headers=headers, reason=response.reason
        )

    def feed(self, data: bytes) -> bytes:
        if not self._body:
            return data
        data = _swap(self._carry + data, self._back)
        cut = max(len(data) - self._keep, 0)
        self._carry = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        data, self._carry = self._carry, b""
        return data


async def _exchange(
    client: Streams, upstream: Streams, name: str, swaps: Mapping[bytes, bytes]
) -> None:
    """Serve HTTP/1 requests from the environment to `name`, each passed on with its
    placeholders swapped (request line, headers, and a body up to SWAP_BODY_LIMIT),
    each answer passed back."""
    (c_reader, c_writer), (u_reader, u_writer) = client, upstream
    server, origin = h11.Connection(h11.SERVER), h11.Connection(h11.CLIENT)
    while True:
        request = await _event(server, c_reader)
        if not isinstance(request, h11.Request):
            return
        host = next((v for k, v in request.headers if k == b"host"), b"").decode("latin-1")
        if normalize_name(host.rpartition(":")[0] if ":" in host else host) != name:
            await _answer(c_writer, server, 421, f"this connection is to {name}")
            return
        if server.client_is_waiting_for_100_continue:
            c_writer.write(server.send(h11.InformationalResponse(status_code=100, headers=[])))
        headers = [(k, _swap(v, swaps)) for k, v in request.headers if k != b"expect"]
        target = _swap(request.target, swaps)
        body = await _small_body(server, c_reader, request) if swaps else None
        if body is not None:  # read whole: placeholders in it are swapped too
            body = _swap(body, swaps)
            headers = [(k, v) for k, v in headers if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
        u_writer.write(
            origin.send(h11.Request(method=request.method, target=target, headers=headers))
        )
        if body is not None:
            if body:
                u_writer.write(origin.send(h11.Data(data=body)))
            u_writer.write(origin.send(h11.EndOfMessage()))
        while body is None:
            part = await _event(server, c_reader)
            if isinstance(part, h11.Data):
                u_writer.write(origin.send(h11.Data(data=part.data)))
                await u_writer.drain()
            elif isinstance(part, h11.EndOfMessage):
                u_writer.write(origin.send(h11.EndOfMessage(headers=part.headers)))
                break
            else:
                return
        await u_writer.drain()
        response = await _event(origin, u_reader)
        while isinstance(response, h11.InformationalResponse):
            if response.status_code == 101:
                break
            response = await _event(origin, u_reader)
        if isinstance(response, h11.InformationalResponse):  # 101: the rest is not HTTP
            c_writer.write(server.send(response))
            await c_writer.drain()
            trailing, _ = origin.trailing_data
            if trailing:
                c_writer.write(trailing)
            await _pipe_both(client, upstream)
            return
        if not isinstance(response, h11.Response):
            return
        scrub = _Scrubber(swaps, response, request.method)
        c_writer.write(server.send(scrub.response))
        while True:
            part = await _event(origin, u_reader)
            if isinstance(part, h11.Data):
                if data := scrub.feed(part.data):
                    c_writer.write(server.send(h11.Data(data=data)))
                await c_writer.drain()
            elif isinstance(part, h11.EndOfMessage):
                if data := scrub.flush():
                    c_writer.write(server.send(h11.Data(data=data)))
                c_writer.write(server.send(part))
                break
            else:
                return
        await c_writer.drain()
        if server.our_state is h11.MUST_CLOSE or origin.our_state is h11.MUST_CLOSE:
            return
        if server.their_state is not h11.DONE or origin.their_state is not h11.DONE:
            return
        server.start_next_cycle()
        origin.start_next_cycle()
