"""Files inside an environment on the real Docker engine: streamed round trips, the
operations, and paths that must never reach the host."""

import hashlib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support.factories import assert_envelope, delete, running_env
from tests.support.inside import PeakRss, run, sh
from tests.support.server import LiveServer

MIB = 1024 * 1024


def _pattern(size: int, digest: "hashlib._Hash") -> Iterator[bytes]:
    """`size` pseudo-random bytes, produced (and hashed) chunk by chunk."""
    block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB
    sent = 0
    counter = 0
    while sent < size:
        chunk = bytes(b ^ (counter & 0xFF) for b in block[:64]) + block[64:]
        chunk = chunk[: size - sent]
        digest.update(chunk)
        sent += len(chunk)
        counter += 1
        yield chunk


def test_a_200_mb_file_round_trips_byte_identical_in_bounded_memory(
    api: httpx.Client, server: LiveServer
) -> None:
    env = running_env(api, name="files-big")
    url = f"/v1/environments/{env['id']}/files"
    size = 200 * MIB
    sent = hashlib.sha256()
    with PeakRss(server) as rss:
        response = api.put(
            url,
            params={"path": "/workspace/big/blob.bin"},
            content=_pattern(size, sent),
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["size"] == size
        got = hashlib.sha256()
        received = 0
        with api.stream("GET", url, params={"path": "/workspace/big/blob.bin"}) as download:
            assert download.status_code == 200
            assert download.headers["content-length"] == str(size)
            for chunk in download.iter_bytes():
                got.update(chunk)
                received += len(chunk)
    assert received == size
    assert got.hexdigest() == sent.hexdigest()
    print(f"server RSS growth: {rss.growth / MIB:.1f} MiB")  # shown with -s
    assert rss.growth < 50 * MIB, f"server RSS grew by {rss.growth / MIB:.1f} MiB"
    # The engine sees the same bytes.
    assert sh(api, env["id"], "sha256sum /workspace/big/blob.bin").split()[0] == sent.hexdigest()
    delete(api, env["id"])


def test_traversal_never_reaches_the_host(
    api: httpx.Client, server: LiveServer, tmp_path: Path
) -> None:
    env = running_env(api, name="files-jail")
    url = f"/v1/environments/{env['id']}/files"
    for path in ("../../etc/passwd", "/workspace/../../etc/passwd", "a/../../b", "/x\x00y"):
        assert_envelope(api.get(url, params={"path": path}), 400, "invalid_request_error")
        response = api.put(url, params={"path": path}, content=b"x")
        assert_envelope(response, 400, "invalid_request_error")

    # An absolute host path names a path inside the environment, not on the host.
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host only")
    assert_envelope(api.get(url, params={"path": str(secret)}), 404, "not_found_error")
    planted = tmp_path / "planted.txt"
    assert api.put(url, params={"path": str(planted)}, content=b"inside").status_code == 200
    assert not planted.exists()
    assert sh(api, env["id"], f"cat {planted}") == "inside"

    # /etc/hostname is the environment's own, even through a symlink to /.
    sh(api, env["id"], "ln -s / /workspace/root")
    own = sh(api, env["id"], "cat /etc/hostname")
    assert own.strip() == "files-jail" != socket.gethostname()
    for path in ("/etc/hostname", "/workspace/root/etc/hostname"):
        assert api.get(url, params={"path": path}).text == own
    marker = f"/tmp/sandbay-escape-{uuid.uuid4().hex}"
    response = api.put(url, params={"path": f"/workspace/root{marker}"}, content=b"in")
    assert response.status_code == 200
    assert not Path(marker).exists()
    assert sh(api, env["id"], f"cat {marker}") == "in"
    listing = api.get(f"{url}/list", params={"path": "/workspace/root/etc"}).json()["data"]
    assert "hostname" in {e["name"] for e in listing}
    delete(api, env["id"])


def test_file_operations(api: httpx.Client) -> None:
    env = running_env(api, name="files-ops")
    base = f"/v1/environments/{env['id']}/files"
    made = api.post(f"{base}/mkdir", json={"path": "/workspace/src/pkg", "mode": "0750"})
    assert made.status_code == 201, made.text
    assert made.json()["is_dir"] is True and made.json()["mode"] == "0750"
    assert api.put(base, params={"path": "src/pkg/a.py"}, content=b"print(1)\n").status_code == 200
    assert api.put(base, params={"path": "src/b.txt"}, content=b"bee").status_code == 200

    # Multipart: several files into one directory.
    form = api.post(
        f"{base}/upload",
        data={"path": "/workspace/up"},
        files=[("file", ("one.txt", b"1")), ("file", ("two.py", b"2" * 5000))],
    )
    assert form.status_code == 201, form.text
    assert [(f["path"], f["size"]) for f in form.json()["data"]] == [
        ("/workspace/up/one.txt", 1),
        ("/workspace/up/two.py", 5000),
    ]

    listing = api.get(f"{base}/list", params={"path": "/workspace/src"}).json()
    assert [(e["name"], e["type"]) for e in listing["data"]] == [
        ("pkg", "directory"),
        ("b.txt", "file"),
    ]
    entry = listing["data"][1]
    assert entry["size"] == 3 and entry["mode"] == "0644" and entry["owner"] == "root"

    stat = api.get(f"{base}/stat", params={"path": "/workspace/src/pkg/a.py"}).json()
    assert stat["type"] == "file" and stat["size"] == 9 and stat["name"] == "a.py"
    assert_envelope(api.get(f"{base}/stat", params={"path": "/nope"}), 404, "not_found_error")

    found = api.get(f"{base}/search", params={"pattern": "*.py"}).json()["data"]
    assert sorted(f["path"] for f in found) == ["/workspace/src/pkg/a.py", "/workspace/up/two.py"]
    found = api.get(f"{base}/search", params={"pattern": "src/*/a.py"}).json()["data"]
    assert [f["path"] for f in found] == ["/workspace/src/pkg/a.py"]

    moved = api.post(
        f"{base}/move", json={"source": "/workspace/src/b.txt", "destination": "/workspace/c.txt"}
    )
    assert moved.status_code == 200 and moved.json()["path"] == "/workspace/c.txt"
    clash = api.post(
        f"{base}/move", json={"source": "/workspace/c.txt", "destination": "/workspace/up/one.txt"}
    )
    assert_envelope(clash, 409, "conflict_error")
    assert api.get(base, params={"path": "/workspace/c.txt"}).content == b"bee"

    assert_envelope(
        api.delete(base, params={"path": "/workspace/src"}), 409, "conflict_error"
    )  # not empty
    assert api.delete(base, params={"path": "/workspace/src", "recursive": True}).status_code == 204
    assert_envelope(
        api.get(f"{base}/stat", params={"path": "/workspace/src"}), 404, "not_found_error"
    )
    assert_envelope(api.get(base, params={"path": "/workspace/up"}), 400, "invalid_request_error")
    assert run(api, env["id"], "ls -a /workspace/up")["stdout"].split() == [
        ".",
        "..",
        "one.txt",
        "two.py",
    ]  # no temporary upload files left behind
    delete(api, env["id"])


def test_a_chunked_upload_without_length_is_spooled(api: httpx.Client) -> None:
    env = running_env(api, name="files-chunked")
    url = f"/v1/environments/{env['id']}/files"

    def body() -> Iterator[bytes]:
        yield b"abc" * 1000
        yield b"def" * 1000

    response = api.put(url, params={"path": "/workspace/chunked.txt"}, content=body())
    assert response.status_code == 200, response.text
    assert api.get(url, params={"path": "/workspace/chunked.txt"}).content == (
        b"abc" * 1000 + b"def" * 1000
    )
    delete(api, env["id"])
