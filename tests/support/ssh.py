"""Logging in with the real OpenSSH client (Debian's openssh-client) with a credential
from `GET …/ssh`: its one-time key and the gateway's known_hosts line are written to
files, and host keys are checked strictly."""

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class SshLogin:
    credential: dict[str, Any]
    key: Path
    known_hosts: Path

    @classmethod
    def write(cls, credential: dict[str, Any], directory: Path) -> "SshLogin":
        directory.mkdir(parents=True, exist_ok=True)
        key = directory / f"{credential['id']}.key"
        key.write_text(credential["private_key"])
        key.chmod(0o600)
        known = directory / f"{credential['id']}.known_hosts"
        known.write_text(credential["known_hosts"] + "\n")
        return cls(credential, key, known)

    @property
    def target(self) -> str:
        return f"{self.credential['username']}@{self.credential['host']}"

    def options(self, log_level: str = "ERROR") -> list[str]:
        return [
            "-i", str(self.key),
            "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=20",
            "-o", f"LogLevel={log_level}",
        ]  # fmt: skip

    def ssh_argv(
        self, *command: str, extra: tuple[str, ...] = (), log_level: str = "ERROR"
    ) -> list[str]:
        """`log_level="INFO"` shows the reason the server gives when it disconnects."""
        port = ["-p", str(self.credential["port"])]
        tail = ["--", *command] if command else []
        return ["ssh", *self.options(log_level), *port, *extra, self.target, *tail]

    def ssh(
        self, *command: str, input: bytes | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.ssh_argv(*command),
            input=input,
            capture_output=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    @contextlib.contextmanager
    def open_session(self) -> Iterator["subprocess.Popen[bytes]"]:
        """A session left running (`sleep 120`), seen still connected after 2 s; its
        stderr shows the reason the server gives when it closes it. Killed at the end."""
        session = subprocess.Popen(
            self.ssh_argv("sleep", "120", log_level="INFO"),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            time.sleep(2)
            assert session.poll() is None
            yield session
        finally:
            session.kill()

    def scp(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        argv = ["scp", *self.options(), "-P", str(self.credential["port"]), *args]
        return subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def sftp(self, batch: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        argv = ["sftp", *self.options(), "-P", str(self.credential["port"]), "-b", "-"]
        return subprocess.run(
            [*argv, self.target], input=batch.encode(), capture_output=True, timeout=timeout
        )

    def remote(self, path: str) -> str:
        return f"{self.target}:{path}"


def password_ssh(
    credential: dict[str, Any], known_hosts: Path, askpass_dir: Path, *command: str
) -> subprocess.CompletedProcess[bytes]:
    """Log in with the password token (OpenSSH reads it from SSH_ASKPASS, no TTY)."""
    askpass = askpass_dir / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\necho '{credential['password']}'\n")
    askpass.chmod(0o700)
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    argv = [
        "ssh",
        "-o", "PubkeyAuthentication=no",
        "-o", "PreferredAuthentications=password",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "LogLevel=ERROR",
        "-p", str(credential["port"]),
        f"{credential['username']}@{credential['host']}",
        "--", *command,
    ]  # fmt: skip
    return subprocess.run(
        argv,
        env=env,
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
