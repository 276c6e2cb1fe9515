"""No stuck states: an engine call that never answers leaves the environment in a
transient state only until its deadline; then it is `error` with a message, and
force-stop and delete still work from there."""

from pathlib import Path

from tests.support.docker_proxy import DockerFaultProxy
from tests.support.engine import container_state
from tests.support.factories import assert_envelope, create_env, stop, wait_state


def test_hung_start_becomes_error_and_can_then_be_stopped_and_deleted(
    make_server: object, tmp_path: Path, docker_client: object
) -> None:
    proxy = DockerFaultProxy(tmp_path / "docker.sock").start()
    try:
        live = make_server(  # type: ignore[operator]
            extra_env={
                "SANDBAY_DOCKER_HOST": proxy.url,
                "SANDBAY_DEADLINE_SCALE": "0.02",  # starting: 120 s → 2.4 s
                "SANDBAY_LEASE_SECONDS": "3",
            }
        )
        live.start()
        proxy.hang_on("POST", r"/containers/sandbay-env_[0-9a-f]+/start$")
        with live.client() as api:
            env = create_env(api, name="hang-start")
            errored = wait_state(api, env["id"], "error", timeout=60)
            assert "stuck in starting" in errored["error_message"]
            changes = [
                (e["from_state"], e["to_state"], e["actor"])
                for e in api.get(f"/v1/environments/{env['id']}/events").json()["data"]
                if e["type"] == "environment.state_changed"
            ]
            assert ("starting", "error", "system:hang-detector") in changes
            types = [
                e["type"] for e in api.get(f"/v1/environments/{env['id']}/events").json()["data"]
            ]

            proxy.clear()  # the engine answers again
            stopping = stop(api, env["id"], force=True)
            assert stopping["state"] == "stopping"
            wait_state(api, env["id"], "stopped", timeout=60)
            types = [
                e["type"] for e in api.get(f"/v1/environments/{env['id']}/events").json()["data"]
            ]
            assert "environment.action_abandoned" in types
            gone = api.delete(f"/v1/environments/{env['id']}")
            assert gone.status_code == 202
            wait_state(api, env["id"], "deleted", timeout=60)
            assert container_state(docker_client, env["id"]) is None  # type: ignore[arg-type]
            assert_envelope(api.get(f"/v1/environments/{env['id']}"), 404, "not_found_error")
    finally:
        proxy.close()


def test_delete_succeeds_while_an_engine_call_is_hung(make_server: object, tmp_path: Path) -> None:
    proxy = DockerFaultProxy(tmp_path / "docker.sock").start()
    try:
        live = make_server(  # type: ignore[operator]
            extra_env={"SANDBAY_DOCKER_HOST": proxy.url, "SANDBAY_LEASE_SECONDS": "3"}
        )
        live.start()
        proxy.hang_on("POST", r"/containers/sandbay-env_[0-9a-f]+/start$")
        with live.client() as api:
            env = create_env(api, name="hang-delete")
            # Delete from a transient state with the start call still hanging.
            assert api.delete(f"/v1/environments/{env['id']}").status_code == 202
            proxy.clear()
            wait_state(api, env["id"], "deleted", timeout=60)
    finally:
        proxy.close()
