"""Sockets made inside another network namespace. A socket keeps the namespace it
was made in, so a short-lived thread enters the environment's namespace (setns
changes only the calling thread), makes and binds the socket there, and the event
loop then serves it from the host like any other."""

import ctypes
import os
import socket
import threading

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def bound_socket(netns_fd: int, kind: socket.SocketKind) -> socket.socket:
    """A non-blocking IPv4 socket of `kind` bound to 127.0.0.1 on a port the kernel
    chose, in the namespace `netns_fd` refers to (a TCP one is listening)."""
    result: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            if _libc.setns(netns_fd, _CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"setns: {os.strerror(errno)}")
            sock = socket.socket(socket.AF_INET, kind)
            try:
                sock.bind(("127.0.0.1", 0))
                if kind == socket.SOCK_STREAM:
                    sock.listen(512)
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            result.append(sock)
        except BaseException as exc:  # handed to the caller's thread
            result.append(exc)

    thread = threading.Thread(target=make, name="sandbay-netns", daemon=True)
    thread.start()
    thread.join()
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def original_destination(sock: socket.socket) -> tuple[str, int]:
    """Where a connection redirected by iptables (`REDIRECT`) was going
    (`SO_ORIGINAL_DST`, read from the namespace's connection tracking)."""
    raw = sock.getsockopt(socket.SOL_IP, 80, 16)  # SO_ORIGINAL_DST, a sockaddr_in
    port = int.from_bytes(raw[2:4], "big")
    return socket.inet_ntoa(raw[4:8]), port
