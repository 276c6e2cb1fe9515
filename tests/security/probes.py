"""Escape probes run inside an environment (python3, standard library only): each
tries one way out and reports whether it got through. Printed as one JSON object,
{name: {"escaped": bool, "detail": str}}. Every attempt is harmless if it succeeds:
control files are opened for writing and closed without a byte written.

    python3 probes.py '{"server_ports": [...], "peers": ["ip", ...]}'
"""

import ctypes
import errno
import json
import os
import platform
import shutil
import socket
import stat
import struct
import subprocess
import sys
from collections.abc import Callable

Result = tuple[bool, str]

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
MACHINE = platform.machine()
#: Numbers of the calls probed, per architecture (x86_64, aarch64).
NR = {
    "x86_64": {
        "clone": 56,
        "keyctl": 250,
        "add_key": 248,
        "bpf": 321,
        "io_uring_setup": 425,
        "perf_event_open": 298,
        "userfaultfd": 323,
        "ptrace": 101,
        "process_vm_readv": 310,
        "setns": 308,
        "init_module": 175,
    },
    "aarch64": {
        "clone": 220,
        "keyctl": 219,
        "add_key": 217,
        "bpf": 280,
        "io_uring_setup": 425,
        "perf_event_open": 241,
        "userfaultfd": 282,
        "ptrace": 117,
        "process_vm_readv": 270,
        "setns": 268,
        "init_module": 105,
    },
}[MACHINE]
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x20000, 0x10000000, 0x40000000


def syscall(name: str, *args: int | bytes | ctypes.Array[ctypes.c_char] | None) -> Result:
    """A raw system call: escaped when it returned a non-negative value."""
    ret = LIBC.syscall(NR[name], *args)
    if ret >= 0:
        return True, f"{name} returned {ret}"
    return False, f"{name}: {errno.errorcode.get(ctypes.get_errno(), '?')}"


def libc_call(name: str, *args: object) -> Result:
    ret = getattr(LIBC, name)(*args)
    if ret >= 0:
        return True, f"{name} returned {ret}"
    return False, f"{name}: {errno.errorcode.get(ctypes.get_errno(), '?')}"


def status() -> dict[str, str]:
    with open("/proc/self/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def open_for_write(path: str) -> Result:
    """Opening a control file for writing is the escape (nothing is written)."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        return False, f"{path}: {exc.strerror}"
    os.close(fd)
    return True, f"{path} opened for writing"


def connect(host: str, port: int) -> Result:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True, f"connected to {host}:{port}"
    except OSError as exc:
        return False, f"{host}:{port}: {exc}"


def default_gateway() -> str:
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == "00000000":
                return socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
    return "172.17.0.1"


def any_of(results: list[Result]) -> Result:
    return any(r[0] for r in results), "; ".join(r[1] for r in results)


# ---- the probes ------------------------------------------------------------------


def capabilities() -> Result:
    s = status()
    caps = {k: s.get(k, "0") for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    return False, json.dumps(caps)  # the test compares them with the documented set


def no_new_privs() -> Result:
    value = LIBC.prctl(39, 0, 0, 0, 0)  # PR_GET_NO_NEW_PRIVS (gVisor's status lacks it)
    return value != 1, f"PR_GET_NO_NEW_PRIVS={value} status={status().get('NoNewPrivs', '-')}"


def seccomp_mode() -> Result:
    value = status().get("Seccomp", "?")
    return value != "2", f"Seccomp={value} filters={status().get('Seccomp_filters', '?')}"


def mount_tmpfs() -> Result:
    os.makedirs("/tmp/probe-mnt", exist_ok=True)
    return libc_call("mount", b"none", b"/tmp/probe-mnt", b"tmpfs", 0, None)


def mount_proc() -> Result:
    os.makedirs("/tmp/probe-proc", exist_ok=True)
    return libc_call("mount", b"proc", b"/tmp/probe-proc", b"proc", 0, None)


def _unshare_in_child(flags: int) -> Result:
    """unshare in a forked child, so a success changes nothing of this process."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if LIBC.unshare(flags) == 0 else 1)
    _, code = os.waitpid(pid, 0)
    ok = os.waitstatus_to_exitcode(code) == 0
    return ok, f"unshare({flags:#x}) {'succeeded' if ok else 'refused'}"


def unshare_user() -> Result:
    return _unshare_in_child(CLONE_NEWUSER)


def unshare_net() -> Result:
    return _unshare_in_child(CLONE_NEWNET)


def unshare_mount() -> Result:
    return _unshare_in_child(CLONE_NEWNS)


def unshare_binary() -> Result:
    if not shutil.which("unshare"):
        return False, "no unshare binary"
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "true"], capture_output=True, timeout=10
    )
    return done.returncode == 0, done.stderr.decode(errors="replace").strip()


def clone_newuser() -> Result:
    """clone(CLONE_NEWUSER | SIGCHLD): the child, if any, exits at once."""
    pid = LIBC.syscall(NR["clone"], CLONE_NEWUSER | 17, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
        return True, "clone(CLONE_NEWUSER) made a child"
    return False, f"clone(CLONE_NEWUSER): {errno.errorcode.get(ctypes.get_errno(), '?')}"


def setns() -> Result:
    fd = os.open("/proc/1/ns/net", os.O_RDONLY)
    try:
        return syscall("setns", fd, 0)
    finally:
        os.close(fd)


def keyctl() -> Result:
    # KEYCTL_GET_KEYRING_ID of the session keyring; add_key of a user key.
    return any_of(
        [
            syscall("keyctl", 0, -3 & 0xFFFFFFFF, 0),
            syscall("add_key", b"user", b"probe", b"x", 1, -3),
        ]
    )


def bpf() -> Result:
    attr = ctypes.create_string_buffer(struct.pack("<IIII", 2, 4, 4, 1), 128)  # array map
    return syscall("bpf", 0, attr, 128)  # BPF_MAP_CREATE


def io_uring_setup() -> Result:
    params = ctypes.create_string_buffer(120)
    return syscall("io_uring_setup", 8, params)


def perf_event_open() -> Result:
    attr = ctypes.create_string_buffer(struct.pack("<IIQ", 1, 128, 0), 128)  # software cpu-clock
    return syscall("perf_event_open", attr, 0, -1, -1, 0)


def userfaultfd() -> Result:
    return syscall("userfaultfd", 0)


def init_module() -> Result:
    return syscall("init_module", b"\0" * 64, 64, b"")


def ptrace_pid1() -> Result:
    result = syscall("ptrace", 16, 1, 0, 0)  # PTRACE_ATTACH
    if result[0]:
        LIBC.syscall(NR["ptrace"], 17, 1, 0, 0)  # PTRACE_DETACH
    return result


def process_vm_readv_pid1() -> Result:
    buf = ctypes.create_string_buffer(8)
    local = struct.pack("QQ", ctypes.addressof(buf), 8)
    remote = struct.pack("QQ", 0x400000, 8)
    return syscall("process_vm_readv", 1, local, 1, remote, 1, 0)


def pid1_environ() -> Result:
    try:
        with open("/proc/1/environ", "rb") as f:
            data = f.read()
    except OSError as exc:
        return False, f"/proc/1/environ: {exc.strerror}"
    # The test looks for the agent's token in what was read.
    return b"SANDBAY_ENVD_TOKEN=" in data, data.decode(errors="replace")


def pid1_memory() -> Result:
    """PID 1's memory holds the agent's token: its first writable mapping, read."""
    try:
        with open("/proc/1/maps") as f:
            maps = f.read()
    except OSError as exc:
        return False, f"/proc/1/maps: {exc.strerror}"
    regions = [line.split()[0] for line in maps.splitlines() if " rw" in line]
    if not regions:
        return False, "no writable mapping listed"
    start = int(regions[0].split("-")[0], 16)
    try:
        with open("/proc/1/mem", "rb") as f:
            f.seek(start)
            data = f.read(64)
    except OSError as exc:
        return False, f"/proc/1/mem: {exc.strerror}"
    return len(data) > 0, f"/proc/1/mem gave {len(data)} bytes"


def sysrq() -> Result:
    return open_for_write("/proc/sysrq-trigger")


def kcore() -> Result:
    try:
        with open("/proc/kcore", "rb") as f:
            data = f.read(64)
    except OSError as exc:
        return False, f"/proc/kcore: {exc.strerror}"
    return len(data) > 0, f"/proc/kcore gave {len(data)} bytes"


def cgroup_release_agent() -> Result:
    paths = ["/sys/fs/cgroup/release_agent"]
    for root, dirs, files in os.walk("/sys/fs/cgroup"):
        paths += [
            os.path.join(root, f) for f in files if f in ("release_agent", "notify_on_release")
        ]
        del dirs[:]  # the top level of each hierarchy is enough
    return any_of([open_for_write(p) for p in dict.fromkeys(paths)])


def mknod_devices() -> Result:
    """A node for the first disk and one for /dev/mem: the escape is reading one
    (gVisor lets mknod make them, but they lead to no host device)."""
    results = []
    for path, kind, major, minor in (
        ("/tmp/probe-sda", stat.S_IFBLK, 8, 0),
        ("/tmp/probe-mem", stat.S_IFCHR, 1, 1),
    ):
        try:
            os.mknod(path, 0o600 | kind, os.makedev(major, minor))
        except OSError as exc:
            results.append((False, f"mknod {path}: {exc.strerror}"))
            continue
        try:
            with open(path, "rb") as f:
                results.append((len(f.read(512)) > 0, f"{path} made and opened"))
        except OSError as exc:
            results.append((False, f"{path} made, open: {exc.strerror}"))
        finally:
            os.unlink(path)
    return any_of(results)


def device_nodes() -> Result:
    results = []
    for path in ("/dev/sda", "/dev/vda", "/dev/nvme0n1", "/dev/mem", "/dev/kmem", "/dev/port"):
        try:
            with open(path, "rb") as f:
                f.read(1)
            results.append((True, f"{path} readable"))
        except OSError as exc:
            results.append((False, f"{path}: {exc.strerror}"))
    blocks = [n for n in os.listdir("/dev") if os.path.exists(f"/dev/{n}") and _is_block(n)]
    results.append((bool(blocks), f"block devices: {blocks}"))
    return any_of(results)


def _is_block(name: str) -> bool:
    return stat.S_ISBLK(os.stat(f"/dev/{name}").st_mode)


def docker_socket() -> Result:
    found = [p for p in ("/var/run/docker.sock", "/run/docker.sock") if os.path.exists(p)]
    return bool(found), f"docker sockets: {found}"


def host_pid_namespace() -> Result:
    """Processes of the host (the engine, the server) visible in /proc."""
    host = {"dockerd", "containerd", "containerd-shim", "systemd", "runsc-sandbox", "runc"}
    seen = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")[:4]
        except OSError:
            continue
        if comm in host or b"sandbay" in argv[1:3]:
            seen.append(f"{pid}:{comm}")
    return bool(seen), f"{len(os.listdir('/proc'))} entries in /proc; host processes: {seen}"


def host_network_namespace() -> Result:
    names = [name for _, name in socket.if_nameindex()]
    host_like = [n for n in names if n.startswith(("docker", "veth", "br-", "ens", "enp", "wl"))]
    return bool(host_like), f"interfaces: {names}"


def write_back(path: str) -> Result:
    """Writing a setting's own value back: the escape is that the write took."""
    try:
        with open(path, "rb") as f:
            value = f.read()
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        return False, f"{path}: {exc.strerror}"
    try:
        os.write(fd, value)
    except OSError as exc:
        return False, f"{path} opened, write: {exc.strerror}"
    finally:
        os.close(fd)
    return True, f"{path} written"


def proc_sys_writes() -> Result:
    return any_of(
        [
            write_back(p)
            for p in (
                "/proc/sys/kernel/hostname",
                "/proc/sys/net/ipv4/ip_forward",
                "/proc/sys/kernel/core_pattern",
                "/proc/sys/kernel/modprobe",
            )
        ]
    )


def raw_sockets() -> Result:
    results = []
    for family, kind, proto in (
        (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
        (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW),
        (socket.AF_PACKET, socket.SOCK_RAW, 0x0300),  # ETH_P_ALL
    ):
        try:
            socket.socket(family, kind, proto).close()
            results.append((True, f"raw socket {family}/{proto} opened"))
        except OSError as exc:
            results.append((False, f"raw socket {family}/{proto}: {exc.strerror}"))
    return any_of(results)


def iptables() -> Result:
    """IPT_SO_GET_INFO on the filter table (what `iptables -L` asks first): it needs
    CAP_NET_ADMIN on any inet socket. The binary too, if the image has it."""
    results = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.getsockopt(socket.SOL_IP, 64, 84)
            results.append((True, "IPT_SO_GET_INFO answered"))
        except OSError as exc:
            results.append((False, f"IPT_SO_GET_INFO: {exc.strerror}"))
    if shutil.which("iptables"):
        done = subprocess.run(["iptables", "-L"], capture_output=True, timeout=10)
        results.append((done.returncode == 0, f"iptables -L exit {done.returncode}"))
    return any_of(results)


def server_loopback(ports: list[int]) -> Result:
    hosts = ["127.0.0.1", default_gateway()]
    return any_of([connect(h, p) for h in hosts for p in ports])


def peer_environments(peers: list[str]) -> Result:
    return any_of([connect(ip, 2280) for ip in peers])


#: Every probe that needs no configuration, by the name the tests use.
PROBES: dict[str, Callable[[], Result]] = {
    f.__name__: f
    for f in (
        capabilities,
        no_new_privs,
        seccomp_mode,
        mount_tmpfs,
        mount_proc,
        unshare_user,
        unshare_net,
        unshare_mount,
        unshare_binary,
        clone_newuser,
        setns,
        keyctl,
        bpf,
        io_uring_setup,
        perf_event_open,
        userfaultfd,
        init_module,
        ptrace_pid1,
        process_vm_readv_pid1,
        pid1_environ,
        pid1_memory,
        sysrq,
        kcore,
        cgroup_release_agent,
        mknod_devices,
        device_nodes,
        docker_socket,
        host_pid_namespace,
        host_network_namespace,
        proc_sys_writes,
        raw_sockets,
        iptables,
    )
}
NAMES = [*PROBES, "server_loopback", "peer_environments"]


def main() -> None:
    config = json.loads(sys.argv[1])
    probes: dict[str, Callable[[], Result]] = {
        **PROBES,
        "server_loopback": lambda: server_loopback(config["server_ports"]),
        "peer_environments": lambda: peer_environments(config["peers"]),
    }
    out = {}
    for name, probe in probes.items():
        try:
            escaped, detail = probe()
        except Exception as exc:  # a probe that crashed did not get through
            escaped, detail = False, f"{type(exc).__name__}: {exc}"
        out[name] = {"escaped": escaped, "detail": detail}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
