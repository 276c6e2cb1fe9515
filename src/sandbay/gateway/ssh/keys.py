"""The SSH gateway's host key: made once in the data dir and kept, so clients that
trust it keep trusting it across restarts (and every replica sharing the data dir
presents the same one)."""

import contextlib
import os
from pathlib import Path

import asyncssh


def load_host_key(path: Path) -> asyncssh.SSHKey:
    """Read the host key, creating it (mode 0600) the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="sandbay gateway")
        staged = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.export_private_key("openssh"))
        # A link publishes it whole; of two processes starting at once, one wins and
        # both read the winner's key.
        with contextlib.suppress(FileExistsError):
            os.link(staged, path)
        staged.unlink()
    return asyncssh.read_private_key(path)


def public_line(key: asyncssh.SSHKey) -> str:
    """`ssh-ed25519 AAAA…` (no comment), as known_hosts wants it."""
    text = key.export_public_key("openssh").decode()
    return " ".join(text.split()[:2])
