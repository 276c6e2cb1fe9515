"""A throw-away Docker Swarm on this machine, for tests of sandbay on many hosts.

Each node is a real `dockerd` (with its own containerd, data root and socket
`unix:///run/<name>.sock`) in a network namespace of its own and a UTS namespace of
its own (so every node has its own hostname, `<tag>-<i>`). The node namespaces hang
off one bridge in a hub namespace: addresses `10.233.0.<i+1>/24` exist only inside
namespaces this module created, never on the host. The first node is the manager
(`swarm init`), the others join as workers. The main engine is never touched.

    with start_swarm(3, labels={1: {"region": "eu"}}) as swarm:
        swarm.manager.client().nodes.list()       # docker SDK on the manager
        swarm.nodes[2].docker("info")             # the docker CLI on node 3
        swarm.nodes[2].stop()                     # its engine goes away...
        swarm.nodes[2].start()                    # ...and comes back, still a member

Engines share the host's kernel, so their cgroup, CPU and memory figures are the
host's. Overlay networks work; service VIPs do not (no IPVS in the namespaces):
services need `endpoint_spec=EndpointSpec(mode="dnsrr")`. The dispatcher heartbeat
is 1 s, so a stopped node shows `down` within seconds. Needs root, `ip`,
`nsenter`, `unshare` and `dockerd` (Debian's docker.io 20.10 has Swarm built in).
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import docker

from tests.support.polling import eventually

SUBNET = "10.233.0"
#: Each engine's own bridge (containers' addresses), `10.234.<node index>.0/24`: inside
#: the node's namespace only; the engines publish ports on the node's address.
BRIDGE = "10.234"
#: This host's address on the hub (with `reachable`): it reaches every node's address.
HOST_ADDRESS = f"{SUBNET}.254"
#: How often workers report to the manager; the manager marks a node down after a
#: few missed beats, so a stopped engine shows `down` in seconds, not a minute.
HEARTBEAT_SECONDS = 1
_serial = count(1)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class SwarmNode:
    """One engine of the Swarm: its namespace, address, socket and process."""

    tag: str
    index: int
    root: Path
    engine_labels: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    node_id: str = ""

    @property
    def name(self) -> str:
        """The engine's hostname (the Swarm node's `Description.Hostname`)."""
        return f"{self.tag}-{self.index}"

    @property
    def netns(self) -> str:
        return self.name

    @property
    def address(self) -> str:
        return f"{SUBNET}.{self.index + 1}"

    @property
    def socket(self) -> Path:
        return Path(f"/run/{self.name}.sock")

    @property
    def url(self) -> str:
        """What `DOCKER_HOST` / `SANDBAY_DOCKER_HOST` should say to reach this engine."""
        return f"unix://{self.socket}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, timeout: int = 30) -> docker.DockerClient:
        """A new docker SDK client on this engine (close it when done)."""
        return docker.DockerClient(base_url=self.url, timeout=timeout)

    def docker(self, *args: str, check: bool = True) -> str:
        """Run the docker CLI against this engine; its standard output."""
        done = subprocess.run(
            ["docker", "-H", self.url, *args], capture_output=True, text=True, timeout=60
        )
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} on {self.name}: {done.stderr}")
        return done.stdout

    def _command(self) -> list[str]:
        labels = "".join(f" --label {k}={v}" for k, v in self.engine_labels.items())
        dockerd = (
            f"exec dockerd --config-file {self.root}/daemon.json"
            f" --data-root {self.root}/data --exec-root {self.root}/exec"
            f" --pidfile {self.root}/dockerd.pid -H {self.url} --bip {BRIDGE}.{self.index}.1/24"
            f" --iptables=false --ip-masq=false{labels}"
        )
        # nsenter (not `ip netns exec`, which remounts /sys and hides the cgroups);
        # unshare --uts gives the engine a hostname of its own. Both exec, so the
        # process we hold is dockerd itself.
        return [
            "nsenter", f"--net=/var/run/netns/{self.netns}", "unshare", "--uts",
            "sh", "-c", f"hostname {self.name} && {dockerd}",
        ]  # fmt: skip

    def launch(self) -> None:
        """Start the engine process (returns before it answers: see `wait_up`)."""
        assert not self.running, f"{self.name} is already running"
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        log = (self.root / "dockerd.log").open("ab")
        self.process = subprocess.Popen(
            self._command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def wait_up(self, timeout: float = 60) -> None:
        """Until the engine answers `/_ping`."""

        def answers() -> bool:
            assert self.running, f"dockerd of {self.name} exited: {self.log_tail()}"
            if not self.socket.exists():
                return False
            client = self.client(timeout=2)
            try:
                return bool(client.ping())
            except Exception:  # not listening yet
                return False
            finally:
                client.close()

        eventually(answers, what=f"engine {self.name} answers", timeout=timeout, every=0.05)

    def start(self, timeout: float = 60) -> None:
        """Start a stopped engine again; it rejoins the Swarm from its data root."""
        self.launch()
        self.wait_up(timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Stop the engine (SIGTERM: a clean shutdown; SIGKILL: a crash). Its
        containers' shims and its containerd are stopped with it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None
        self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        """containerd and shims this engine started, should they outlive it (a
        SIGKILL of dockerd leaves them): found by their exec root in their command."""
        marker = str(self.root).encode()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            with contextlib.suppress(OSError):
                if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(int(pid), signal.SIGKILL)

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "dockerd.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Swarm:
    nodes: list[SwarmNode]

    @property
    def manager(self) -> SwarmNode:
        return self.nodes[0]

    @property
    def workers(self) -> list[SwarmNode]:
        return self.nodes[1:]

    def load_image(self, ref: str) -> None:
        """Copy an image of this machine's engine onto every node (`docker save`,
        `docker load`): the nodes pull nothing, as no engine here can."""
        saved = subprocess.run(["docker", "save", ref], capture_output=True, check=True).stdout

        def load(node: SwarmNode) -> None:
            subprocess.run(
                ["docker", "-H", node.url, "load"], input=saved, capture_output=True, check=True
            )

        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(load, self.nodes))

    def node_state(self, node: SwarmNode) -> str:
        """The node's state as the manager sees it (`ready`, `down`, `unknown`)."""
        return self.manager.docker(
            "node", "inspect", node.node_id, "-f", "{{.Status.State}}"
        ).strip()

    def wait_state(self, node: SwarmNode, state: str, timeout: float = 60) -> None:
        eventually(
            lambda: self.node_state(node) == state,
            what=f"node {node.name} {state}",
            timeout=timeout,
            every=0.2,
        )


def _make_network(tag: str, nodes: list[SwarmNode]) -> None:
    hub = f"{tag}-hub"
    _ip("netns", "add", hub)
    _ip("-n", hub, "link", "add", "br0", "type", "bridge")
    _ip("-n", hub, "link", "set", "br0", "up")
    for node in nodes:
        _ip("netns", "add", node.netns)
        port = f"p{node.index}"
        _ip("link", "add", "eth0", "netns", node.netns, "type", "veth", "peer", "name", port,
            "netns", hub)  # fmt: skip
        _ip("-n", node.netns, "addr", "add", f"{node.address}/24", "dev", "eth0")
        _ip("-n", node.netns, "link", "set", "eth0", "up")
        _ip("-n", node.netns, "link", "set", "lo", "up")
        _ip("-n", hub, "link", "set", port, "master", "br0")
        _ip("-n", hub, "link", "set", port, "up")


def _link_host(tag: str) -> str:
    """A veth from this host into the hub: the nodes' addresses (and the ports their
    engines publish there) become reachable from here, as a control plane reaches
    its runners. Returns the host end's name (deleting it removes both ends)."""
    name, peer = f"{tag}h", f"{tag}u"
    _ip("link", "add", name, "type", "veth", "peer", "name", peer, "netns", f"{tag}-hub")
    _ip("-n", f"{tag}-hub", "link", "set", peer, "master", "br0")
    _ip("-n", f"{tag}-hub", "link", "set", peer, "up")
    _ip("addr", "add", f"{HOST_ADDRESS}/24", "dev", name)
    _ip("link", "set", name, "up")
    return name


def _host_config() -> dict[str, object]:
    path = Path("/etc/docker/daemon.json")
    loaded: dict[str, object] = json.loads(path.read_text()) if path.exists() else {}
    return loaded


def _unmount_under(*roots: Path) -> None:
    """Anything the engines left mounted under their directories (netns files,
    overlay layers), deepest first."""
    prefixes = tuple(str(root) + "/" for root in roots)
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted((p for p in points if p.startswith(prefixes)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _teardown(tag: str, base: Path, nodes: list[SwarmNode]) -> None:
    subprocess.run(["ip", "link", "del", f"{tag}h"], capture_output=True)
    with ThreadPoolExecutor(len(nodes) or 1) as pool:
        list(pool.map(lambda node: node.stop(timeout=15), nodes))
    _unmount_under(base)
    for ns in [node.netns for node in nodes] + [f"{tag}-hub"]:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    for node in nodes:
        with contextlib.suppress(FileNotFoundError):
            node.socket.unlink()
    shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def start_swarm(
    size: int = 3,
    *,
    labels: Mapping[int, Mapping[str, str]] | None = None,
    engine_labels: Mapping[int, Mapping[str, str]] | None = None,
    daemon_config: Mapping[str, object] | None = None,
    reachable: bool = False,
) -> Iterator[Swarm]:
    """`size` engines joined into one Swarm (node 0 the manager), torn down on exit.

    `labels` are Swarm node labels (`docker node update --label-add`), by node
    index; `engine_labels` are the engines' own `dockerd --label`s. Each engine
    reads `daemon_config` (default: the host engine's /etc/docker/daemon.json, so
    the nodes run as the host's engine does: runtimes, user namespaces). With
    `reachable` this host gets `HOST_ADDRESS` on the hub and reaches every node's
    address (one reachable Swarm at a time: the subnet is the same)."""
    config = dict(daemon_config) if daemon_config is not None else _host_config()
    assert 1 <= size <= 200
    tag = f"sbsw{os.getpid() % 100000}x{next(_serial)}"
    base = Path(tempfile.mkdtemp(prefix=f"{tag}-"))
    nodes = [
        SwarmNode(
            tag=tag, index=i, root=base / str(i), engine_labels=(engine_labels or {}).get(i, {})
        )
        for i in range(size)
    ]
    try:
        base.chmod(0o755)  # a userns-remapped engine's root must reach its data root
        for node in nodes:
            node.root.mkdir()
            (node.root / "daemon.json").write_text(json.dumps(config))
        _make_network(tag, nodes)
        if reachable:
            _link_host(tag)
        for node in nodes:  # engines boot in parallel
            node.launch()
        for node in nodes:
            node.wait_up()
        manager = nodes[0]
        with contextlib.closing(manager.client()) as client:
            client.swarm.init(
                advertise_addr=manager.address,
                listen_addr=f"{manager.address}:2377",
                dispatcher_heartbeat_period=HEARTBEAT_SECONDS * 1_000_000_000,
            )
            token = client.swarm.attrs["JoinTokens"]["Worker"]
            manager.node_id = client.info()["Swarm"]["NodeID"]

        def join(node: SwarmNode) -> None:
            with contextlib.closing(node.client()) as worker:
                worker.swarm.join(
                    remote_addrs=[f"{manager.address}:2377"],
                    join_token=token,
                    advertise_addr=node.address,
                    listen_addr=f"{node.address}:2377",
                )
                node.node_id = worker.info()["Swarm"]["NodeID"]

        with ThreadPoolExecutor(max(1, size - 1)) as pool:
            list(pool.map(join, nodes[1:]))
        swarm = Swarm(nodes)
        with contextlib.closing(manager.client()) as client:
            for index, node_labels in (labels or {}).items():
                member = client.nodes.get(nodes[index].node_id)
                spec = dict(member.attrs["Spec"])
                spec["Labels"] = {**spec.get("Labels", {}), **node_labels}
                member.update(spec)
        for node in nodes[1:]:
            swarm.wait_state(node, "ready")
        yield swarm
    finally:
        _teardown(tag, base, nodes)
