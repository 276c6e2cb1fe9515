"""Looking inside environments with the Docker SDK directly (the engine's truth)."""

import io
import tarfile

import docker


def sh(client: docker.DockerClient, env_id: str, command: str) -> str:
    """Run a shell command in an environment's container; it must succeed."""
    result = client.containers.get(f"sandbay-{env_id}").exec_run(["sh", "-c", command])
    assert result.exit_code == 0, result.output
    return str(result.output.decode())


def container_state(client: docker.DockerClient, env_id: str) -> str | None:
    rows = client.api.containers(all=True, filters={"name": f"sandbay-{env_id}"})
    return str(rows[0]["State"]) if rows else None


def read_file(client: docker.DockerClient, env_id: str, path: str) -> bytes:
    """A file of an environment's container, running or not (the engine's archive API)."""
    stream, _ = client.api.get_archive(f"sandbay-{env_id}", path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.next()
        assert member is not None
        extracted = tar.extractfile(member)
        assert extracted is not None
        return extracted.read()
