"""Archiving to an S3-compatible bucket. No S3 service exists on this machine, so
the bucket is served by moto's S3 server on loopback (the real S3 wire protocol)."""

from collections.abc import Iterator
from typing import Any

import boto3
import docker
import pytest
from moto.server import ThreadedMotoServer

from tests.support.engine import sh
from tests.support.factories import running_env, stop, wait_state
from tests.support.server import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sandbay-test",
    "AWS_SECRET_ACCESS_KEY": "sandbay-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_archive_to_s3_bucket_and_restore(
    make_server: Any, s3_endpoint: str, docker_client: docker.DockerClient
) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="sandbay-archives")
    live = make_server(
        extra_env={
            **CREDENTIALS,
            "SANDBAY_ARCHIVE_S3_URL": "s3://sandbay-archives/envs",
            "SANDBAY_ARCHIVE_S3_ENDPOINT": s3_endpoint,
        }
    )
    live.start()
    with live.client() as api:
        env = running_env(api, name="s3-archive")
        sh(
            docker_client,
            env["id"],
            "head -c 2000000 /dev/urandom > /workspace/blob; echo r > /root/r",
        )
        sums = sh(docker_client, env["id"], "sha256sum /workspace/blob /root/r")
        stop(api, env["id"])
        wait_state(api, env["id"], "stopped")
        assert api.post(f"/v1/environments/{env['id']}/archive").status_code == 200
        wait_state(api, env["id"], "archived", timeout=60)
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="sandbay-archives")["Contents"])
        assert keys == [
            f"envs/{env['id']}/layer.tar.zst",
            f"envs/{env['id']}/manifest.json",
            f"envs/{env['id']}/workspace.tar.zst",
        ]
        api.post(f"/v1/environments/{env['id']}/start")
        wait_state(api, env["id"], "running", timeout=60)
        assert sh(docker_client, env["id"], "sha256sum /workspace/blob /root/r") == sums
        assert s3.list_objects_v2(Bucket="sandbay-archives").get("Contents") is None
        api.delete(f"/v1/environments/{env['id']}")
        wait_state(api, env["id"], "deleted")
