"""Daytona's SDK, unchanged, forks a started sandbox and snapshots one on real Docker:
the fork has every file of the source (root filesystem and /workspace), its own id
and files from then on; a sandbox created from the snapshot's name starts with the
snapshotted files; the source keeps running throughout."""

import uuid

import httpx
import pytest
from daytona import CreateSandboxFromSnapshotParams, Daytona, SandboxState

# The toolbox's work is the environment's (its agent), not the database's.
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]

SEED = "head -c 5M /dev/urandom > /workspace/blob && echo layer > /opt/layer"
DIGESTS = "sha256sum /workspace/blob /opt/layer"


def test_fork_and_snapshot_through_the_sdk(daytona: Daytona, api: httpx.Client) -> None:
    source = daytona.create(
        CreateSandboxFromSnapshotParams(auto_stop_interval=0, labels={"team": "a"}), timeout=120
    )
    made = []
    try:
        assert source.process.exec(SEED).exit_code == 0
        digests = source.process.exec(DIGESTS).result

        name = f"fork-{uuid.uuid4().hex[:8]}"
        fork = source.fork(name=name, timeout=120)
        made.append(fork)
        assert fork.state == SandboxState.STARTED and fork.name == name
        assert fork.id != source.id and fork.labels.get("team") == "a"
        assert fork.process.exec(DIGESTS).result == digests
        fork.process.exec("echo mine > /workspace/only-fork")
        assert source.process.exec("test -e /workspace/only-fork").exit_code == 1
        source.refresh_data()
        assert source.state == SandboxState.STARTED

        forks = api.get(f"/sandbox/{source.id}/forks")
        assert forks.status_code == 200, forks.text
        assert [f["id"] for f in forks.json()] == [fork.id]

        snap = f"snap-{uuid.uuid4().hex[:8]}"
        source.create_snapshot(snap, timeout=120)
        source.process.exec("echo later > /workspace/later")
        copy = daytona.create(CreateSandboxFromSnapshotParams(snapshot=snap), timeout=120)
        made.append(copy)
        assert copy.process.exec(DIGESTS).result == digests
        # The snapshot was taken before `later` was written.
        assert copy.process.exec("test -e /workspace/later").exit_code == 1
    finally:
        for box in [*made, source]:
            daytona.delete(box, wait=True)
