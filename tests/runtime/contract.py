"""The contract every runtime provider passes, on a real engine, through the protocols
only. Here: the harness, `ProviderContract` for `RuntimeProvider` and `ArchiverContract`
(`runtime.provider`); the optional abilities' contracts mirror their protocols' modules,
in `contract_inside.py` (`runtime.inside`) and `contract_access.py` (`runtime.access`).
A test module subclasses each contract its implementation offers and supplies the
fixtures: `provider` always, the ability's own (`runner`, `files`, …) where it has one,
and the `vanish` hook. Everything a test makes carries an instance label of its own
and is removed afterwards, even when the test fails. No test asserts wall-clock times:
waits are bounded only so that a broken provider fails instead of hanging."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest

from sandbay.domain.errors import ContainerNotFound, ImageMissing, RuntimeFailure
from sandbay.domain.ids import new_id
from sandbay.domain.runtime import ContainerSpec, ContainerStatus
from sandbay.runtime.provider import Archiver, RuntimeProvider

MIB = 1024 * 1024
ECHO_PORT = 7000
#: Exit code of a workload killed by SIGKILL (128 + 9), and of one ended by SIGTERM.
KILLED, TERMINATED = 137, 143
#: The shared workload: one line on each stream, then a TCP echo server on ECHO_PORT.
WORKLOAD = f"""
import socket, sys, threading
print("contract-out", flush=True)
print("contract-err", file=sys.stderr, flush=True)
server = socket.create_server(("0.0.0.0", {ECHO_PORT}))
def echo(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
while True:
    threading.Thread(target=echo, args=(server.accept()[0],), daemon=True).start()
"""
#: A workload that marks itself ready once its TERM handling is in place.
TRAPS_TERM = "trap 'echo TERM > /workspace/signal; exit 0' TERM; touch /workspace/ready; "
IGNORES_TERM = "trap '' TERM; touch /workspace/ready; "
LOOP = "while :; do sleep 0.1; done"
#: The limits the workload's own cgroup shows: memory bytes, pids, "cpu-quota cpu-period".
LIMITS_SH = """
if [ -f /sys/fs/cgroup/memory.max ]; then
  cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max
else
  cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max
  echo "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
fi
"""


def unknown_environment() -> str:
    return new_id("env")


async def eventually(check: Callable[[], Awaitable[bool]], *, attempts: int = 200) -> None:
    """Poll `check` until it holds (bounded, so a broken provider fails, not hangs)."""
    for _ in range(attempts):
        if await check():
            return
        await anyio.sleep(0.05)
    raise AssertionError(f"{check.__qualname__} never held")


async def sh(provider: RuntimeProvider, environment_id: str, script: str) -> str:
    """Run a shell script in the workload through `run_hook`; it must succeed."""
    result = await provider.run_hook(environment_id, ["/bin/sh", "-c", script], 30)
    assert result.exit_code == 0 and not result.timed_out, result
    return result.output


async def has_file(provider: RuntimeProvider, environment_id: str, path: str) -> bool:
    result = await provider.run_hook(environment_id, ["test", "-e", path], 30)
    return result.exit_code == 0


@dataclass
class Environments:
    """Specs under instance labels unique to one test; `ContractBase.purge` removes
    everything they label."""

    provider: RuntimeProvider
    image: str
    instances: list[str] = field(default_factory=list)

    def new_instance(self) -> str:
        self.instances.append(f"test-contract-{uuid.uuid4().hex[:12]}")
        return self.instances[-1]

    def spec(
        self, script: str | None = None, *, instance: str | None = None, **kw: Any
    ) -> ContainerSpec:
        """`script` runs under /bin/sh -c as the image's command; without it the
        workload sleeps (as a platform keep-alive)."""
        fields: dict[str, Any] = {
            "environment_id": new_id("env"),
            "org_id": "org_contract",
            "instance": instance or (self.instances[0] if self.instances else self.new_instance()),
            "image": self.image,
            "argv": ["sleep", "infinity"] if script is None else ["/bin/sh", "-c", script],
            "keep_alive": script is None,
            "memory_mb": 128,
            "cpu": 0.5,
            "pids_limit": 64,
        }
        fields.update(kw)
        return ContainerSpec(**fields)

    async def created(self, script: str | None = None, **kw: Any) -> ContainerSpec:
        spec = self.spec(script, **kw)
        await self.provider.create(spec)
        return spec

    async def started(self, script: str | None = None, **kw: Any) -> ContainerSpec:
        spec = self.spec(script, **kw)
        await self.provider.start(spec)
        return spec


class ContractBase:
    """Fixtures every contract shares. Subclasses supply `provider` (class scope,
    built with `runner_id`) and `vanish`."""

    pytestmark: ClassVar[Any] = pytest.mark.anyio
    image: ClassVar[str] = "sandbay-base:latest"
    runner_id: ClassVar[str] = "contract-runner"

    @pytest.fixture(scope="class")
    @classmethod
    def anyio_backend(cls) -> str:
        return "asyncio"

    @pytest.fixture(scope="class")
    @classmethod
    def provider(cls) -> RuntimeProvider:
        raise NotImplementedError("the implementation's test class supplies `provider`")

    @classmethod
    async def vanish(cls, provider: RuntimeProvider, environment_id: str) -> None:
        """Remove the container behind the provider's back, keeping its volume (what an
        engine prune or a rebuilt host does)."""
        raise NotImplementedError

    @classmethod
    async def purge(cls, provider: RuntimeProvider, instance: str) -> None:
        """Remove every container and volume labelled `instance`; an implementation may
        add an engine-level sweep in case its own listing is what broke."""
        for container in await provider.list_containers(instance):
            await provider.remove(container.environment_id)
        for volume in await provider.list_volumes(instance):
            await provider.remove_volume(volume.name)

    @pytest.fixture
    @classmethod
    async def envs(cls, provider: RuntimeProvider) -> AsyncIterator[Environments]:
        made = Environments(provider, cls.image)
        made.new_instance()
        try:
            yield made
        finally:
            for instance in made.instances:
                await cls.purge(provider, instance)

    @pytest.fixture(scope="class")
    @classmethod
    async def shared(cls, provider: RuntimeProvider) -> AsyncIterator[ContainerSpec]:
        """One running workload (WORKLOAD) for the checks that only look, or that keep to
        a directory of their own."""
        made = Environments(provider, cls.image)
        made.new_instance()
        try:
            spec = made.spec(
                argv=["python3", "-c", WORKLOAD],
                keep_alive=True,
                env={"CONTRACT_VAR": "contract-value"},
                hostname="contract-host",
            )
            await provider.start(spec)
            yield spec
        finally:
            await cls.purge(provider, made.instances[0])

    @pytest.fixture
    @classmethod
    def workdir(cls) -> str:
        """A directory of this test's own in the shared workload's /workspace."""
        return f"/workspace/t-{uuid.uuid4().hex[:12]}"


class ProviderContract(ContractBase):
    """`RuntimeProvider`: lifecycle, listing by label, hooks, host and images."""

    # ---- one running workload, looked at -------------------------------------------------

    async def test_inspect_reports_a_running_container(
        self, provider: RuntimeProvider, shared: ContainerSpec
    ) -> None:
        info = await provider.inspect(shared.environment_id)
        assert info is not None
        assert info.status is ContainerStatus.RUNNING and info.running
        assert (info.environment_id, info.org_id) == (shared.environment_id, shared.org_id)
        assert info.container_id and info.started_at
        assert info.exit_code is None and not info.oom_killed

    async def test_containers_and_volumes_are_listed_by_instance_label(
        self, provider: RuntimeProvider, shared: ContainerSpec
    ) -> None:
        [container] = await provider.list_containers(shared.instance)
        assert (container.environment_id, container.org_id) == (
            shared.environment_id,
            "org_contract",
        )
        assert container.status is ContainerStatus.RUNNING and container.created
        [volume] = await provider.list_volumes(shared.instance)
        assert volume.environment_id == shared.environment_id and volume.name and volume.created
        other = f"test-contract-{uuid.uuid4().hex[:12]}"
        assert await provider.list_containers(other) == []
        assert await provider.list_volumes(other) == []

    async def test_workload_runs_in_its_workspace_with_its_env_and_hostname(
        self, provider: RuntimeProvider, shared: ContainerSpec
    ) -> None:
        out = await sh(provider, shared.environment_id, 'pwd; echo "$CONTRACT_VAR"; hostname')
        assert out.splitlines() == ["/workspace", "contract-value", "contract-host"]
        written = "echo written > /workspace/w && cat /workspace/w"
        assert await sh(provider, shared.environment_id, written) == "written\n"

    async def test_workload_is_held_to_its_memory_cpu_and_pids_limits(
        self, provider: RuntimeProvider, shared: ContainerSpec
    ) -> None:
        memory, pids, cpu = (await sh(provider, shared.environment_id, LIMITS_SH)).splitlines()
        assert int(memory) == shared.memory_mb * MIB
        assert int(pids) == shared.pids_limit
        quota, period = (int(x) for x in cpu.split())
        assert quota / period == shared.cpu

    async def test_run_hook_returns_the_commands_exit_code_and_output(
        self, provider: RuntimeProvider, shared: ContainerSpec
    ) -> None:
        argv = ["/bin/sh", "-c", "echo hooked; exit 3"]
        result = await provider.run_hook(shared.environment_id, argv, 30)
        assert (result.exit_code, result.timed_out) == (3, False)
        assert "hooked" in result.output

    async def test_run_hook_kills_a_command_that_outlives_its_timeout(
        self, provider: RuntimeProvider, shared: ContainerSpec
    ) -> None:
        result = await provider.run_hook(shared.environment_id, ["sleep", "60"], 0.5)
        assert result.timed_out and result.exit_code == KILLED

    async def test_wait_exit_of_a_running_workload_returns_none(
        self, provider: RuntimeProvider, shared: ContainerSpec
    ) -> None:
        assert await provider.wait_exit(shared.environment_id, 0.2) is None

    # ---- host and images -------------------------------------------------------------------

    async def test_host_resources_describe_this_runner(self, provider: RuntimeProvider) -> None:
        host = await provider.host_resources()
        assert host.runner_id == self.runner_id
        assert host.cpus >= 1 and host.memory_bytes > 256 * MIB and host.gpus >= 0

    async def test_image_available_knows_present_images_and_refuses_unknown_ones(
        self, provider: RuntimeProvider
    ) -> None:
        assert await provider.image_available(self.image) is True
        assert await provider.image_available("sandbay-no-such-image:nope") is False

    async def test_create_from_an_unknown_image_raises_a_permanent_image_missing(
        self, provider: RuntimeProvider, envs: Environments
    ) -> None:
        spec = envs.spec(image="sandbay-no-such-image:nope")
        with pytest.raises(ImageMissing) as missing:
            await provider.create(spec)
        assert missing.value.permanent  # retrying cannot help
        assert await provider.inspect(spec.environment_id) is None
        await provider.remove(spec.environment_id)  # what the reconciler does next
        assert await provider.list_volumes(spec.instance) == []

    # ---- unknown containers --------------------------------------------------------------

    async def test_steps_on_an_unknown_container_are_no_ops(
        self, provider: RuntimeProvider
    ) -> None:
        env = unknown_environment()
        assert await provider.inspect(env) is None
        await provider.signal(env, "SIGTERM")
        await provider.remove(env)
        await provider.remove_volume(f"sandbay-no-such-volume-{env}")
        assert await provider.wait_exit(env, 1) == -1  # gone: code unknown
        assert await provider.kill(env) == -1

    async def test_run_hook_in_an_unknown_container_raises_container_not_found(
        self, provider: RuntimeProvider
    ) -> None:
        with pytest.raises(ContainerNotFound):
            await provider.run_hook(unknown_environment(), ["true"], 5)

    # ---- lifecycle ----------------------------------------------------------------------------

    async def test_create_is_idempotent_and_leaves_the_workload_stopped(
        self, provider: RuntimeProvider, envs: Environments
    ) -> None:
        spec = envs.spec()
        first = await provider.create(spec)
        second = await provider.create(spec)
        assert first.container_id and first.container_id == second.container_id
        assert first.status is ContainerStatus.CREATED
        info = await provider.inspect(spec.environment_id)
        assert info is not None and info.status is ContainerStatus.CREATED and not info.running
        assert info.container_id == first.container_id and info.org_id == spec.org_id
        [volume] = await provider.list_volumes(spec.instance)
        assert volume.environment_id == spec.environment_id
        with pytest.raises(RuntimeFailure):
            await provider.run_hook(spec.environment_id, ["true"], 5)  # nothing runs
        started = await provider.start(spec)
        assert started.running and started.container_id == ""  # not created again

    async def test_start_creates_a_missing_container_and_is_idempotent(
        self, provider: RuntimeProvider, envs: Environments
    ) -> None:
        spec = envs.spec(user="nobody")
        first = await provider.start(spec)
        again = await provider.start(spec)
        info = await provider.inspect(spec.environment_id)
        assert info is not None and info.running
        assert first.running and first.container_id == info.container_id
        assert again.running and again.container_id == ""
        assert await sh(provider, spec.environment_id, "id -un") == "nobody\n"

    async def test_graceful_stop_delivers_sigterm_to_the_workload(
        self, provider: RuntimeProvider, envs: Environments
    ) -> None:
        spec = await envs.started(TRAPS_TERM + LOOP)
        await eventually(lambda: has_file(provider, spec.environment_id, "/workspace/ready"))
        await provider.signal(spec.environment_id, "SIGTERM")
        assert await provider.wait_exit(spec.environment_id, 30) == 0  # its trap's exit
        info = await provider.inspect(spec.environment_id)
        assert info is not None and info.status is ContainerStatus.EXITED
        assert info.exit_code == 0 and info.finished_at
        await provider.signal(spec.environment_id, "SIGTERM")  # not running: a no-op
        await provider.start(spec)
        assert await sh(provider, spec.environment_id, "cat /workspace/signal") == "TERM\n"

    async def test_start_after_stop_runs_the_workload_again_on_the_same_workspace(
        self, provider: RuntimeProvider, envs: Environments
    ) -> None:
        spec = await envs.started("echo run >> /workspace/runs; exec sleep infinity")
        env = spec.environment_id

        def runs(n: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return (await sh(provider, env, "cat /workspace/runs")).count("run") == n

            return check

        await eventually(runs(1))
        await provider.signal(env, "SIGTERM")  # no handler: the default action ends it
        assert await provider.wait_exit(env, 30) == TERMINATED
        await provider.start(spec)
        await eventually(runs(2))

    async def test_an_exited_workload_keeps_its_exit_code_until_started_again(
        self, provider: RuntimeProvider, envs: Environments
    ) -> None:
        spec = await envs.started("exit 3")
        assert await provider.wait_exit(spec.environment_id, 30) == 3
        info = await provider.inspect(spec.environment_id)
        assert info is not None and info.status is ContainerStatus.EXITED and info.exit_code == 3
        assert await provider.wait_exit(spec.environment_id, 0.5) == 3  # not restarted
        [listed] = await provider.list_containers(spec.instance)
        assert listed.status is ContainerStatus.EXITED

    async def test_kill_ends_a_workload_that_ignores_sigterm(
        self, provider: RuntimeProvider, envs: Environments
    ) -> None:
        spec = await envs.started(IGNORES_TERM + LOOP)
        env = spec.environment_id
        await eventually(lambda: has_file(provider, env, "/workspace/ready"))
        await provider.signal(env, "SIGTERM")
        assert await provider.wait_exit(env, 0.5) is None  # ignored
        assert await provider.kill(env) == KILLED
        info = await provider.inspect(env)
        assert info is not None and info.status is ContainerStatus.EXITED
        assert info.exit_code == KILLED and not info.oom_killed
        assert await provider.kill(env) == KILLED  # already dead: its code again

    async def test_a_workload_over_its_memory_limit_is_reported_oom_killed(
        self, provider: RuntimeProvider, envs: Environments
    ) -> None:
        spec = envs.spec(memory_mb=64, argv=["python3", "-c", "b = b'x' * (512 << 20)"])
        await provider.start(spec)
        assert await provider.wait_exit(spec.environment_id, 60) == KILLED
        info = await provider.inspect(spec.environment_id)
        assert info is not None and info.oom_killed and info.exit_code == KILLED

    async def test_start_recreates_a_vanished_container_keeping_its_workspace(
        self, provider: RuntimeProvider, envs: Environments
    ) -> None:
        spec = await envs.started()
        env = spec.environment_id
        before = await provider.inspect(env)
        assert before is not None
        await sh(provider, env, "echo kept > /workspace/f")
        await self.vanish(provider, env)
        assert await provider.inspect(env) is None
        assert [v.environment_id for v in await provider.list_volumes(spec.instance)] == [env]
        again = await provider.start(spec)
        assert again.running and again.container_id not in ("", before.container_id)
        assert await sh(provider, env, "cat /workspace/f") == "kept\n"

    async def test_remove_deletes_the_container_and_its_volume(
        self, provider: RuntimeProvider, envs: Environments
    ) -> None:
        spec = await envs.started()
        env = spec.environment_id
        await sh(provider, env, "echo gone > /workspace/f")
        await provider.remove(env)
        await provider.remove(env)  # idempotent
        assert await provider.inspect(env) is None
        assert await provider.list_containers(spec.instance) == []
        assert await provider.list_volumes(spec.instance) == []
        assert await provider.wait_exit(env, 1) == -1
        await provider.start(spec)  # the same id again starts from nothing
        assert await sh(provider, env, "ls -A /workspace") == ""

    async def test_an_orphaned_volume_is_removed_by_name(
        self, provider: RuntimeProvider, envs: Environments
    ) -> None:
        spec = await envs.created()
        await self.vanish(provider, spec.environment_id)
        assert await provider.list_containers(spec.instance) == []
        [volume] = await provider.list_volumes(spec.instance)
        await provider.remove_volume(volume.name)
        await provider.remove_volume(volume.name)  # idempotent
        assert await provider.list_volumes(spec.instance) == []

    async def test_list_containers_keeps_installations_apart(
        self, provider: RuntimeProvider, envs: Environments
    ) -> None:
        created = await envs.created()
        running = await envs.started(org_id="org_other")
        elsewhere = await envs.created(instance=envs.new_instance())
        listed = {c.environment_id: c for c in await provider.list_containers(created.instance)}
        assert set(listed) == {created.environment_id, running.environment_id}
        assert listed[created.environment_id].status is ContainerStatus.CREATED
        assert listed[running.environment_id].status is ContainerStatus.RUNNING
        assert listed[running.environment_id].org_id == "org_other"
        [other] = await provider.list_containers(elsewhere.instance)
        assert other.environment_id == elsewhere.environment_id
        volumes = {v.environment_id for v in await provider.list_volumes(created.instance)}
        assert volumes == {created.environment_id, running.environment_id}


class ArchiverContract(ContractBase):
    """`Archiver`: a stopped environment's files out of the engine and back."""

    async def test_export_then_restore_brings_back_workspace_and_root_files(
        self, provider: RuntimeProvider, archiver: Archiver, envs: Environments, tmp_path: Path
    ) -> None:
        spec = await envs.started()
        env = spec.environment_id
        await sh(
            provider, env, "echo ws > /workspace/w; echo layer > /root/l; rm /etc/debian_version"
        )
        with pytest.raises(RuntimeFailure):
            await archiver.export(env, tmp_path)  # still running
        assert await provider.kill(env) == KILLED
        manifest = await archiver.export(env, tmp_path)
        assert manifest["environment_id"] == env
        await provider.remove(env)
        corrupt = tmp_path / "corrupt"
        corrupt.mkdir()
        for item in tmp_path.iterdir():
            if item.is_file():
                (corrupt / item.name).write_bytes(item.read_bytes())
        first = next(iter(manifest["files"]))
        (corrupt / first).write_bytes(b"not the archive")
        with pytest.raises(RuntimeFailure):
            await archiver.restore(spec, corrupt)
        assert await provider.inspect(env) is None  # refused before creating anything
        restored = await archiver.restore(spec, tmp_path)
        assert restored.environment_id == env
        await provider.start(spec)
        out = await sh(provider, env, "cat /workspace/w /root/l; test ! -e /etc/debian_version")
        assert out == "ws\nlayer\n"
