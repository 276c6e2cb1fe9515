"""Looking inside environments with the Docker SDK directly (the engine's truth)."""

import docker


def sh(client: docker.DockerClient, env_id: str, command: str) -> str:
    """Run a shell command in an environment's container; it must succeed."""
    result = client.containers.get(f"sandbay-{env_id}").exec_run(["sh", "-c", command])
    assert result.exit_code == 0, result.output
    return str(result.output.decode())


def container_state(client: docker.DockerClient, env_id: str) -> str | None:
    rows = client.api.containers(all=True, filters={"name": f"sandbay-{env_id}"})
    return str(rows[0]["State"]) if rows else None
