"""Network policy enforced by the host in a container's own network namespace:
`nsenter --net` into it and load an iptables filter table there (IPv4 and IPv6).
The workload has no CAP_NET_ADMIN, so even root inside cannot change or flush it,
and it applies to everything in the namespace, exec'd processes included. Needs
the server to run as root on the engine's host (it reads the container's pid).

Loopback always stays open, and so do new connections to the environment agent's
port and their replies (the platform reaches everything inside through it, also under
`block_all`; it answers only the environment's own token); an allow list also admits
replies (conntrack) and peers in the list. Other environments on the engine's bridge
are refused to every environment (an unrestricted one too) unless its list names
them: they do not reach each other by default.
Rejected packets get an ICMP "administratively prohibited", so a blocked connection
fails at once rather than hanging.

A policy by name (`rules.proxied`) adds a nat table: every DNS query goes to the egress
gateway's resolver and every other TCP connection (but to loopback and the listed
CIDRs) to its proxy, both listening on the namespace's loopback
(`sandbay.runtime.egress`); the environment's CA goes into its trust store."""

import asyncio
import contextlib
import io
import ipaddress
import os
import posixpath
import shutil
import tarfile
from dataclasses import dataclass
from typing import Any

from sandbay.domain.egress import CA_BUNDLE, CA_FILE
from sandbay.domain.errors import Conflict, RuntimeFailure
from sandbay.domain.runtime import NetworkRules
from sandbay.runtime.docker.engine import Engine
from sandbay.runtime.docker.names import container_name
from sandbay.runtime.egress import EgressGateway, EgressPorts
from sandbay.runtime.envd.channel import PORT

_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class Bridge:
    """The engine's bridge network: its subnet holds every environment, its gateway is
    the host."""

    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network


def filter_table(rules: NetworkRules, version: int, bridge: Bridge | None = None) -> str:
    """The `*filter` table for iptables-restore (`version` 4) or ip6tables-restore (6).
    Other environments on the engine's `bridge` are refused unless the allow list
    names addresses among them: an unrestricted environment reaches anything else
    (the host included), a restricted one what it lists."""
    reject = "icmp-admin-prohibited" if version == 4 else "icmp6-adm-prohibited"
    peers = bridge.subnet if bridge is not None and bridge.subnet.version == version else None
    if rules.unrestricted:
        lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
        if bridge is not None and peers is not None:
            lines += [
                "-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
                f"-A OUTPUT -d {bridge.gateway} -j ACCEPT",
                f"-A OUTPUT -d {peers} -j REJECT --reject-with {reject}",
            ]
        return "\n".join([*lines, "COMMIT", ""])
    lines = [
        "*filter",
        ":INPUT DROP [0:0]",
        ":FORWARD DROP [0:0]",
        ":OUTPUT DROP [0:0]",
        "-A INPUT -i lo -j ACCEPT",
        "-A OUTPUT -o lo -j ACCEPT",
        f"-A INPUT -p tcp --dport {PORT} -j ACCEPT",
        f"-A OUTPUT -p tcp --sport {PORT} -m conntrack --ctstate ESTABLISHED -j ACCEPT",
    ]
    if rules.proxied and not rules.block_all and version == 4:
        # Redirected to the egress gateway on loopback: filter still sees the route
        # chosen before the nat table's REDIRECT, so `-o lo` does not match them.
        lines.append("-A OUTPUT -d 127.0.0.1/32 -m conntrack --ctstate DNAT -j ACCEPT")
    if not rules.block_all:
        lines.append("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
        lines.append("-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
        networks = [
            n
            for n in (ipaddress.ip_network(cidr, strict=False) for cidr in rules.allow)
            if n.version == version
        ]
        # Peers named in the list first, then the rest of the bridge refused, so a
        # wide entry (0.0.0.0/0) does not open other environments.
        named = [n for n in networks if peers is not None and n.subnet_of(peers)]  # type: ignore[arg-type]
        rest = [n for n in networks if n not in named]
        for network in named:
            lines += [f"-A OUTPUT -d {network} -j ACCEPT", f"-A INPUT -s {network} -j ACCEPT"]
        if peers is not None:
            lines.append(f"-A OUTPUT -d {peers} -j REJECT --reject-with {reject}")
        for network in rest:
            lines += [f"-A OUTPUT -d {network} -j ACCEPT", f"-A INPUT -s {network} -j ACCEPT"]
    lines += [f"-A OUTPUT -j REJECT --reject-with {reject}", "COMMIT", ""]
    return "\n".join(lines)


def nat_table(rules: NetworkRules, ports: EgressPorts | None) -> str:
    """The `*nat` table (IPv4): with `ports`, DNS to the resolver and TCP (but to
    loopback and the listed CIDRs) to the proxy; empty otherwise."""
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines.append(":POSTROUTING ACCEPT [0:0]")
    if ports is not None:
        lines += [
            f"-A OUTPUT -p udp --dport 53 -j REDIRECT --to-ports {ports.dns}",
            "-A OUTPUT -o lo -j RETURN",
        ]
        for cidr in rules.allow:
            network = ipaddress.ip_network(cidr, strict=False)
            if network.version == 4:
                lines.append(f"-A OUTPUT -d {network} -j RETURN")
        lines.append(f"-A OUTPUT -p tcp -j REDIRECT --to-ports {ports.proxy}")
    return "\n".join([*lines, "COMMIT", ""])


_CA_BEGIN = b"# sandbay egress CA\n"


class HostNetworkPolicy:
    """`NetworkPolicy` for Docker containers on this host (see the module docstring)."""

    def __init__(self, engine: Engine, egress: EgressGateway | None = None) -> None:
        self._engine = engine
        self.egress = egress
        self._locks: dict[str, asyncio.Lock] = {}
        self._bridge: Bridge | None = None
        #: environment id → the namespace whose container already trusts its CA (the
        #: sweep re-applies every policy; the trust store needs writing once per start)
        self._trusted: dict[str, tuple[int, int]] = {}

    async def apply(self, environment_id: str, rules: NetworkRules, *, fresh: bool = False) -> None:
        # One at a time per environment, so the last request is the one in force.
        async with self._locks.setdefault(environment_id, asyncio.Lock()):
            await self._apply(environment_id, rules, fresh)

    async def _pid(self, environment_id: str) -> int:
        engine = self._engine
        raw: dict[str, Any] = await engine.run(
            engine.api.inspect_container, container_name(environment_id)
        )
        state = raw.get("State") or {}
        if not state.get("Running") or not state.get("Pid"):
            raise Conflict("the environment's workload is not running")
        if (raw.get("HostConfig") or {}).get("NetworkMode") == "host":
            raise RuntimeFailure("a container on the host's network cannot have a policy")
        return int(state["Pid"])

    async def _apply(self, environment_id: str, rules: NetworkRules, fresh: bool) -> None:
        if shutil.which("nsenter") is None or shutil.which("iptables-restore") is None:
            raise RuntimeFailure("network policy needs nsenter and iptables on the server host")
        pid = await self._pid(environment_id)
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        except OSError as exc:
            raise RuntimeFailure(f"cannot open the environment's network namespace: {exc}") from exc
        try:
            # The pid may have been reused between inspect and open: the namespace we
            # hold must still be the container's, and never the host's own.
            if await self._pid(environment_id) != pid or _same_namespace(fd):
                raise RuntimeFailure("the environment's network namespace changed; try again")
            bridge = await self._bridge_network()
            ports = None
            if rules.proxied and not rules.block_all:
                if self.egress is None:
                    raise RuntimeFailure("this runner has no egress proxy for a policy by name")
                ports = await self.egress.listen(environment_id, fd)
                netns = os.fstat(fd)
                if self._trusted.get(environment_id) != (netns.st_dev, netns.st_ino):
                    await self._trust(environment_id, self.egress.ca_pem(environment_id))
                    self._trusted[environment_id] = (netns.st_dev, netns.st_ino)
            elif self.egress is not None:
                self.egress.release(environment_id)
                self._trusted.pop(environment_id, None)
            if ports is not None or not fresh:  # a fresh start has no nat rules to lift
                await self._restore(fd, "iptables-restore", nat_table(rules, ports))
            await self._restore(fd, "iptables-restore", filter_table(rules, 4, bridge))
            if shutil.which("ip6tables-restore") is not None:
                await self._restore(fd, "ip6tables-restore", filter_table(rules, 6, bridge))
        finally:
            os.close(fd)

    async def _trust(self, environment_id: str, pem: bytes) -> None:
        """Put the environment's CA into its trust store (once per container)."""
        engine, name = self._engine, container_name(environment_id)
        bundle_path, bundle = CA_BUNDLE, b""
        for _ in range(4):  # the bundle may be a symlink (to a symlink)
            try:
                stream, _ = await engine.run(engine.api.get_archive, name, bundle_path)
            except Exception:  # no bundle in this image: the CA file alone
                break
            member, data = _untar(b"".join(stream))
            if member is None or not member.issym():
                bundle = data
                break
            bundle_path = posixpath.normpath(
                posixpath.join(posixpath.dirname(bundle_path), member.linkname)
            )
        block = _CA_BEGIN + pem
        if block in bundle:
            return
        kept = bundle.split(_CA_BEGIN)[0]
        if kept and not kept.endswith(b"\n"):
            kept += b"\n"
        for path, data in ((CA_FILE, pem), (bundle_path, kept + block)):
            await engine.run(engine.api.put_archive, name, "/", _tar(path.lstrip("/"), data))

    async def _bridge_network(self) -> Bridge | None:
        if self._bridge is None:
            self._bridge = await bridge_network(self._engine)
        return self._bridge

    async def _restore(self, fd: int, tool: str, table: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            "nsenter",
            f"--net=/proc/self/fd/{fd}",
            "--",
            tool,
            "--wait",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(fd,),
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(table.encode()), _TIMEOUT_S)
        except TimeoutError as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise RuntimeFailure(f"{tool} did not finish in {_TIMEOUT_S:g}s") from exc
        if proc.returncode != 0:
            message = err.decode(errors="replace").strip()[-500:]
            raise RuntimeFailure(f"{tool} failed: {message}")


def _same_namespace(fd: int) -> bool:
    """True if `fd` is our own network namespace (the host's, for a host process)."""
    ours = os.stat("/proc/self/ns/net")
    theirs = os.fstat(fd)
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


async def bridge_network(engine: Engine, network: str = "bridge") -> Bridge | None:
    """The engine's bridge network (IPv4), or None when the engine has no such network
    or it is not local."""
    try:
        raw: dict[str, Any] = await engine.run(engine.api.inspect_network, network)
    except Exception:  # an engine away, or a remote one: nothing to listen on here
        return None
    for config in (raw.get("IPAM") or {}).get("Config") or []:
        gateway, subnet = config.get("Gateway"), config.get("Subnet")
        if gateway and subnet and ipaddress.ip_address(gateway).version == 4:
            return Bridge(ipaddress.ip_address(gateway), ipaddress.ip_network(subnet, strict=False))
    return None


async def bridge_gateway(engine: Engine, network: str = "bridge") -> str | None:
    """The host's address on the engine's bridge network (what a container reaches
    the host by), or None when the engine has no such network or it is not local."""
    bridge = await bridge_network(engine, network)
    return None if bridge is None else str(bridge.gateway)


def _tar(path: str, data: bytes) -> bytes:
    """A tar of one root-owned, world-readable file (and its directories)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            info = tarfile.TarInfo("/".join(parts[:depth]))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        info = tarfile.TarInfo(path)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _untar(archive: bytes) -> tuple[tarfile.TarInfo | None, bytes]:
    """The first member of a tar (a file's content, or a symlink's entry)."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.next()
        if member is None or not member.isfile():
            return member, b""
        f = tar.extractfile(member)
        return member, f.read() if f is not None else b""
