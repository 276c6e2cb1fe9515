"""Docker Engine provider (official `docker` SDK). One container per environment,
named `sandbay-<env id>`, with a named volume at /workspace and the environment agent
(docs/envd.md) mounted read-only at /.sandbay as its PID 1; the SDK is blocking, so
every call runs on a dedicated thread pool, never on the event loop."""

import asyncio
import contextlib
import functools
import logging
import os
import posixpath
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import docker
import requests
from docker.api.client import APIClient
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import LogConfig

from sandbay.domain.errors import (
    Conflict,
    ContainerNotFound,
    EngineUnavailable,
    ImageMissing,
    InvalidRequest,
    RuntimeFailure,
)
from sandbay.domain.errors import NotFound as AgentNotFound
from sandbay.domain.exec import ProcessSpec
from sandbay.domain.runtime import (
    ContainerInfo,
    ContainerSpec,
    ContainerStatus,
    HookResult,
    HostResources,
    VolumeInfo,
)
from sandbay.runtime.docker import disks
from sandbay.runtime.docker.engine import Engine
from sandbay.runtime.docker.errors import engine_unreachable, map_engine_errors
from sandbay.runtime.docker.health import EngineHealth, engine_started_at
from sandbay.runtime.docker.locator import AgentMissing, DockerLocator
from sandbay.runtime.docker.names import (
    AGENT_BIN,
    AGENT_DIR,
    CAPABILITIES,
    HOLD_VAR,
    LABEL_ENV,
    LABEL_INSTANCE,
    LABEL_ORG,
    MIB,
    TOKEN_VAR,
    UNKNOWN_EXIT,
    WORKSPACE,
    container_name,
    remapped,
    userns_mode,
    volume_name,
)
from sandbay.runtime.docker.ports import published_endpoint
from sandbay.runtime.envd.channel import PORT, Channel
from sandbay.runtime.envd.processes import EnvdRunner

log = logging.getLogger(__name__)
T = TypeVar("T")
#: A shared volume's label (its storage carries no instance label: the orphan sweep
#: removes workspace volumes only, and a shared one outlives every environment).
LABEL_VOLUME = "sandbay.volume"


def shared_volume_name(volume_id: str) -> str:
    """The engine volume that stores a shared volume."""
    return f"sandbay-vol-{volume_id}"


_HOST_CACHE_SECONDS = 60.0
_IMAGE_CACHE_SECONDS = 30.0
#: While the engine is known down, a call first asks whether it is back, this long.
_PING_SECONDS = 2.0
_HOOK_OUTPUT = 4096


def _make_owned_like(path: str, model: str) -> None:
    """Make a bind's source directory owned as the volume's own data is (container
    root: under `userns-remap`, an unprivileged host uid), rather than by host root
    as the engine would make it."""
    stat, head = os.stat(model), model
    for part in Path(os.path.relpath(path, model)).parts:
        head = os.path.join(head, part)
        if not os.path.isdir(head):
            os.mkdir(head)
            os.chown(head, stat.st_uid, stat.st_gid)


def swarm_address(info: dict[str, Any]) -> str | None:
    """The node's Swarm address (from `docker info`), if the engine is in a Swarm."""
    swarm = info.get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active":
        return None
    return str(swarm.get("NodeAddr") or "") or None


def _info(raw: dict[str, Any]) -> ContainerInfo:
    """Map an engine inspect result to the domain shape."""
    state = raw.get("State", {})
    labels = raw.get("Config", {}).get("Labels") or {}
    status = state.get("Status", "exited")
    return ContainerInfo(
        container_id=raw.get("Id", ""),
        environment_id=labels.get(LABEL_ENV, ""),
        org_id=labels.get(LABEL_ORG, ""),
        status=ContainerStatus(status),
        exit_code=state.get("ExitCode") if status in ("exited", "dead") else None,
        oom_killed=bool(state.get("OOMKilled")),
        started_at=state.get("StartedAt"),
        finished_at=state.get("FinishedAt"),
        agent_endpoint=published_endpoint(raw) if state.get("Running") else None,
    )


class DockerProvider:
    """`RuntimeProvider` over one Docker Engine (one runner)."""

    def __init__(
        self,
        *,
        runner_id: str,
        agent_dir: Path,
        base_url: str | None = None,
        threads: int = 64,
        agent_ready_timeout: float = 30.0,
        disk_limits: bool = True,
        agent_token: Callable[[str], str] | None = None,
    ) -> None:
        self.runner_id = runner_id
        #: The token an environment's agent accepts, derived from its id when set, so
        #: that a replica on another host can open it without asking this engine.
        self._agent_token = agent_token
        if not (agent_dir / "envd").is_file():
            raise RuntimeFailure(
                f"the environment agent is not built ({agent_dir / 'envd'} is missing): "
                "run `make setup` or scripts/build-envd.sh"
            )
        self._agent_dir = str(agent_dir.resolve())
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="docker")
        try:
            if base_url:
                self._client = docker.DockerClient(
                    base_url=base_url, version="auto", max_pool_size=threads
                )
            else:
                self._client = docker.from_env(version="auto", max_pool_size=threads)
        except DockerException as exc:
            raise RuntimeFailure(f"cannot reach the Docker engine: {exc}") from exc
        self._api = self._client.api
        self._engine = Engine(self._client, self._run)
        #: The engine's availability as seen by every call (and its outages).
        self.health = EngineHealth(
            started_at=functools.partial(engine_started_at, self._engine.unix_socket)
        )
        #: The channel to every environment's agent on this engine.
        # Without live restore an engine's containers stop with it: while it is down,
        # no agent answers, so a call fails at once rather than dial a gone address.
        gone_with_engine = None if self._live_restore() else self.health
        self.channel = Channel(DockerLocator(self._engine, gone_with_engine))
        self._agent_ready_timeout = agent_ready_timeout
        #: Processes inside this engine's environments (pre-stop hooks, and every
        #: ability of the runtime built on this provider).
        self.runner = EnvdRunner(self.channel)
        self._resources: HostResources | None = None
        self._resources_at = 0.0
        self._images_seen: dict[str, float] = {}
        try:
            info = self._client.info()
        except (DockerException, requests.exceptions.RequestException):
            info = {}
        #: The engine maps container root to an unprivileged host uid (`userns-remap`).
        self.remapped = remapped(info)
        #: The engine's volumes directory when disk_gb is enforced (runtime/docker/disks).
        self.disk_root = self._disk_root(info) if disk_limits else None
        #: On a Swarm node: the node's address, where each agent's port is published
        #: (a random port) for the replicas on other hosts (docs/scaling.md).
        self.node_address = swarm_address(info)
        swarm = info.get("Swarm") or {}
        #: On a Swarm node: its node id, which is then this runner's id.
        self.node_id: str | None = swarm.get("NodeID") or None
        #: A Swarm manager answers for every node (and a worker for none).
        self.swarm_manager = bool(swarm.get("ControlAvailable"))

    def _disk_root(self, info: dict[str, Any]) -> Path | None:
        root = str(info.get("DockerRootDir") or "")
        why = disks.supported(root, str(info.get("Driver") or ""))
        if why is not None:
            log.warning("disk_gb is not enforced: %s", why)
            return None
        return Path(root) / "volumes"

    def _volume_dir(self, environment_id: str) -> Path | None:
        return None if self.disk_root is None else disks.of(self.disk_root, environment_id)

    def _live_restore(self) -> bool:
        """Whether the engine keeps its containers running while it is down."""
        try:
            return bool(self._client.info().get("LiveRestoreEnabled"))
        except (DockerException, requests.exceptions.RequestException):
            return False

    async def call(self, fn: Callable[[APIClient], T]) -> T:
        """Run `fn(low-level API client)` on the engine thread pool, with errors
        translated; for optional abilities built on this provider."""
        return await self._run(fn, self._api)

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one blocking call; while the engine is known down, answer at once
        (after a bounded ping) rather than wait on it."""
        if self.health.down and not await self._engine.ping(_PING_SECONDS):
            raise engine_unreachable("it does not answer yet")
        loop = asyncio.get_running_loop()
        try:
            with map_engine_errors():
                result = await loop.run_in_executor(
                    self._executor, functools.partial(fn, *args, **kwargs)
                )
        except EngineUnavailable:
            self.health.unreachable()
            raise
        except RuntimeFailure:
            self.health.reached()  # the engine answered, with an error
            raise
        self.health.reached()
        return result

    # ---- host ------------------------------------------------------------------------

    async def host_resources(self) -> HostResources:
        # Re-read now and then: a runtime registered (or memory added) later is seen.
        stale = time.monotonic() - self._resources_at > _HOST_CACHE_SECONDS
        if self._resources is None or stale:
            info = await self._run(self._client.info)
            self._resources_at = time.monotonic()
            self._resources = HostResources(
                runner_id=self.runner_id,
                cpus=float(info.get("NCPU", 1)),
                memory_bytes=int(info.get("MemTotal", 0)),
                gpus=0,
                runtimes=frozenset(info.get("Runtimes") or {"runc": {}}),
            )
        return self._resources

    async def image_available(self, image: str) -> bool:
        seen = self._images_seen.get(image)
        if seen is not None and time.monotonic() - seen < _IMAGE_CACHE_SECONDS:
            return True
        ok = await self._run(self._image_available, image)
        if ok:
            self._images_seen[image] = time.monotonic()
        return ok

    def _image_available(self, image: str) -> bool:
        try:
            self._client.images.get(image)
            return True
        except ImageNotFound:
            pass
        try:
            self._client.images.get_registry_data(image)
            return True
        except (APIError, requests.exceptions.RequestException):
            return False

    # ---- lifecycle -------------------------------------------------------------------
    # The low-level API is used throughout: by container name, one engine call per
    # step (the high-level models re-inspect after every call).

    def _inspect_raw(self, environment_id: str) -> dict[str, Any] | None:
        try:
            raw: dict[str, Any] = self._api.inspect_container(container_name(environment_id))
            return raw
        except NotFound:
            return None

    def _entrypoint(self, spec: ContainerSpec) -> list[str]:
        """The agent as PID 1, then the workload as Docker would have run it (the
        image's entrypoint before the command), or the keep-alive's argv as it is."""
        if spec.keep_alive:
            return [AGENT_BIN, "init", *(["--", *spec.argv] if spec.argv else [])]
        try:
            config = self._api.inspect_image(spec.image).get("Config") or {}  # type: ignore[no-untyped-call]
        except ImageNotFound:
            self._pull(spec.image)
            config = self._api.inspect_image(spec.image).get("Config") or {}  # type: ignore[no-untyped-call]
        return [AGENT_BIN, "init", "--", *(config.get("Entrypoint") or []), *spec.argv]

    def _create(self, spec: ContainerSpec) -> str:
        labels = {
            LABEL_ENV: spec.environment_id,
            LABEL_ORG: spec.org_id,
            LABEL_INSTANCE: spec.instance,
        }
        volume = volume_name(spec.environment_id)
        # Idempotent: creating an existing volume returns it.
        made = self._api.create_volume(name=volume, labels=labels)
        vdir = self._make_disk(made["Mountpoint"], spec.disk_gb)
        binds = [
            f"{volume}:{WORKSPACE}:rw",
            f"{self._agent_dir}:{AGENT_DIR}:ro",
            *self._shared_binds(spec),
        ]
        publish: dict[int | str, Any] = {}
        if self.node_address is not None:
            publish[PORT] = (self.node_address, None)
        host_config = self._api.create_host_config(
            port_bindings=publish,
            cap_drop=["ALL"],
            cap_add=CAPABILITIES,
            security_opt=["no-new-privileges:true"],
            pids_limit=spec.pids_limit,
            runtime=spec.runtime.value,
            userns_mode=userns_mode(spec.runtime.value, self.remapped),
            mem_limit=spec.memory_mb * MIB,
            memswap_limit=spec.memory_mb * MIB,
            nano_cpus=int(spec.cpu * 1e9),
            binds=binds,
            log_config=LogConfig(
                type=LogConfig.types.JSON, config={"max-size": "10m", "max-file": "3"}
            ),
        )
        entrypoint = self._entrypoint(spec)
        # A fresh token per container: it opens this environment's agent and nothing else.
        token = (
            secrets.token_hex(24)
            if self._agent_token is None
            else self._agent_token(spec.environment_id)
        )
        env = {**spec.env, TOKEN_VAR: token, HOLD_VAR: "1"}
        for attempt in range(2):
            try:
                created = self._api.create_container(
                    image=spec.image,
                    name=container_name(spec.environment_id),
                    hostname=spec.hostname,
                    environment=env,
                    user=spec.user or "",
                    working_dir=WORKSPACE,
                    labels=labels,
                    host_config=host_config,
                    detach=True,
                    entrypoint=entrypoint,
                    command=[],
                    ports=[PORT] if publish else None,
                )
                self._attach_layer(vdir, created["Id"])
                return str(created["Id"])
            except ImageNotFound:
                if attempt:
                    raise
                self._pull(spec.image)
            except APIError as exc:
                if exc.status_code != 409:
                    raise
                # Created concurrently, or before a crash: adopt it.
                found = self._inspect_raw(spec.environment_id)
                if found is None:
                    raise
                self._attach_layer(vdir, found["Id"])
                return str(found["Id"])
        raise RuntimeFailure("unreachable")  # pragma: no cover

    def _make_disk(self, mountpoint: str, size_gb: int) -> Path | None:
        """The environment's disk, made for a new (empty) workspace volume and bound
        onto it; None where disks are off, or for a volume made before they were
        (its files stay where they are, without a limit)."""
        if self.disk_root is None:
            return None
        vdir = disks.volume_dir(mountpoint)
        if not disks.exists(vdir):
            if any(Path(mountpoint).iterdir()):
                return None
            disks.make(vdir, size_gb)
        disks.attach_workspace(vdir)
        return vdir

    def _attach_layer(self, vdir: Path | None, container_id: str) -> None:
        if vdir is None:
            return
        raw = self._api.inspect_container(container_id)
        disks.attach_layer(vdir, disks.layer_dir(raw["GraphDriver"]["Data"]["UpperDir"]))

    def _reattach_disk(self, environment_id: str) -> None:
        """Mount the disk again where a reboot (or a lazy unmount) took it away."""
        vdir = self._volume_dir(environment_id)
        if vdir is None or not disks.exists(vdir) or disks.attached(vdir):
            return
        disks.attach_workspace(vdir)
        with contextlib.suppress(NotFound):
            self._attach_layer(vdir, container_name(environment_id))

    def _shared_binds(self, spec: ContainerSpec) -> list[str]:
        """Binds of the shared volumes it mounts, their storage made if missing. A
        subpath is the volume's directory on the engine's host plus the subpath (the
        engine makes it): Docker 20.10 has no volume subpath option, so this needs
        the engine's own filesystem (one host), as every runner here has."""
        binds = []
        for mount in spec.mounts:
            name = shared_volume_name(mount.volume_id)
            # Idempotent: creating an existing volume returns it.
            created = self._api.create_volume(
                name=name, labels={LABEL_VOLUME: mount.volume_id, LABEL_ORG: spec.org_id}
            )
            source = name
            if mount.subpath:
                source = posixpath.join(created["Mountpoint"], mount.subpath)
                _make_owned_like(source, created["Mountpoint"])
            binds.append(f"{source}:{mount.path}:rw")
        return binds

    def _pull(self, image: str) -> None:
        try:
            self._client.images.pull(image)
        except (ImageNotFound, NotFound, APIError) as exc:
            raise ImageMissing(f"image {image!r} not found and could not be pulled") from exc

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        container_id = await self._run(self._create, spec)
        return ContainerInfo(
            container_id=container_id,
            environment_id=spec.environment_id,
            org_id=spec.org_id,
            status=ContainerStatus.CREATED,
        )

    def _start(self, spec: ContainerSpec, *, replace: bool = False) -> ContainerInfo:
        """Start it (recreating a vanished container, or with `replace` the one there
        now). No inspect afterwards: the engine has started the workload; one that
        exits at once is seen by the next look."""
        name = container_name(spec.environment_id)
        recreated = ""
        if replace:
            self._api.remove_container(name, force=True)
        self._reattach_disk(spec.environment_id)
        try:
            self._api.start(name)
        except NotFound:
            # The container vanished (engine pruned, host rebuilt) or was replaced:
            # recreate it; the workspace volume, if it survived, is reattached.
            recreated = self._create(spec)
            self._api.start(name)
        endpoint = None
        if self.node_address is not None:
            # The engine picks the published port at start: read it back.
            endpoint = published_endpoint(self._api.inspect_container(name))
        return ContainerInfo(
            container_id=recreated,
            environment_id=spec.environment_id,
            org_id=spec.org_id,
            status=ContainerStatus.RUNNING,
            agent_endpoint=endpoint,
        )

    async def start(self, spec: ContainerSpec, *, release: bool = True) -> ContainerInfo:
        """Start the workload and return once its agent answers (or it stopped); the
        agent holds the workload until `release` unless `release` is set here."""
        info = await self._run(self._start, spec)
        try:
            await self.channel.ready(spec.environment_id, timeout=self._agent_ready_timeout)
        except AgentMissing:
            # Made by a release without the agent: the same container again, with it
            # (the workspace volume stays; the root filesystem's changes do not).
            log.warning("recreating %s with the environment agent", spec.environment_id)
            info = await self._run(self._start, spec, replace=True)
            await self.channel.ready(spec.environment_id, timeout=self._agent_ready_timeout)
        if release and info.running:
            await self.release(spec.environment_id)
        return info

    async def release(self, environment_id: str) -> None:
        # An agent from before the hold answers 404: its workload never waited. A
        # workload that is gone (Conflict, ContainerNotFound) has nothing to release.
        with contextlib.suppress(AgentNotFound, Conflict, ContainerNotFound):
            await self.channel.call(environment_id, "POST", "/v1/release")

    def _signal(self, environment_id: str, signal: str) -> None:
        name = container_name(environment_id)
        try:
            self._api.kill(name, signal=signal)
        except NotFound:
            return
        except APIError as exc:
            if exc.status_code != 409:
                raise
            if "paused" not in str(exc.explanation or ""):
                return  # not running: nothing to signal
            # A paused workload cannot take signals: resume it, then signal.
            self._api.unpause(name)
            self._api.kill(name, signal=signal)

    async def signal(self, environment_id: str, signal: str) -> None:
        await self._run(self._signal, environment_id, signal)

    def _wait_exit(self, environment_id: str, timeout: float) -> int | None:
        try:
            answer = self._api.wait(
                container_name(environment_id),
                timeout=max(timeout, 0.01),  # type: ignore[arg-type]  # requests takes floats
                condition="not-running",
            )
            return int(answer.get("StatusCode", -1))
        except NotFound:
            return UNKNOWN_EXIT
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            raw = self._inspect_raw(environment_id)
            if raw is None:
                return UNKNOWN_EXIT
            state = raw["State"]
            return None if state.get("Running", False) else int(state.get("ExitCode", -1))

    async def wait_exit(self, environment_id: str, timeout: float) -> int | None:
        return await self._run(self._wait_exit, environment_id, timeout)

    def _kill(self, environment_id: str) -> int | None:
        self._signal(environment_id, "SIGKILL")
        return self._wait_exit(environment_id, 10.0)

    async def kill(self, environment_id: str) -> int | None:
        self.channel.locator.forget(environment_id)
        return await self._run(self._kill, environment_id)

    async def run_hook(self, environment_id: str, argv: list[str], timeout: float) -> HookResult:
        """Run a short command in the running workload (pre-stop hooks) through its
        agent; past `timeout` its whole tree is killed."""
        try:
            proc = await self.runner.spawn(environment_id, ProcessSpec(argv=argv))
        except Conflict as exc:  # not running: as good as no container for a hook
            raise ContainerNotFound(f"cannot run the hook: {exc.message}") from exc
        output = bytearray()

        async def collect() -> int | None:
            async for chunk in proc.output():
                output.extend(chunk.data)
                del output[:-_HOOK_OUTPUT]
            return await proc.wait()

        task = asyncio.ensure_future(collect())
        try:
            code = await asyncio.wait_for(asyncio.shield(task), max(timeout, 0.1))
            timed_out = False
        except TimeoutError:
            await proc.kill()
            code, timed_out = await task, True
        except InvalidRequest as exc:  # it could not start: a result, not an error
            return HookResult(exit_code=127, output=exc.message, timed_out=False)
        finally:
            await proc.close()
        return HookResult(
            exit_code=code, output=output.decode(errors="replace"), timed_out=timed_out
        )

    def _freeze(self, environment_id: str, *, freeze: bool) -> None:
        """The engine's cgroup freezer; a container already in the wanted state is
        left alone (the engine answers 409 "already paused" / "not paused")."""
        name = container_name(environment_id)
        try:
            (self._api.pause if freeze else self._api.unpause)(name)
        except NotFound:
            raise RuntimeFailure("the container is gone") from None
        except APIError as exc:
            explanation = str(exc.explanation or "")
            done = "already paused" if freeze else "not paused"
            if exc.status_code != 409 or done not in explanation:
                raise

    async def pause(self, environment_id: str) -> None:
        await self._run(self._freeze, environment_id, freeze=True)

    async def resume(self, environment_id: str) -> None:
        await self._run(self._freeze, environment_id, freeze=False)

    def _inspect(self, environment_id: str) -> ContainerInfo | None:
        raw = self._inspect_raw(environment_id)
        return None if raw is None else _info(raw)

    async def inspect(self, environment_id: str) -> ContainerInfo | None:
        return await self._run(self._inspect, environment_id)

    def _remove(self, environment_id: str) -> None:
        with contextlib.suppress(NotFound):
            self._api.remove_container(container_name(environment_id), force=True)
        self._remove_volume(volume_name(environment_id))

    async def remove(self, environment_id: str) -> None:
        self.channel.locator.forget(environment_id)
        await self._run(self._remove, environment_id)

    def _list(self, instance: str) -> list[ContainerInfo]:
        # The low-level list is one call; the high-level one inspects each container.
        rows = self._client.api.containers(
            all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"}
        )
        return [
            ContainerInfo(
                container_id=row["Id"],
                environment_id=(row.get("Labels") or {}).get(LABEL_ENV, ""),
                org_id=(row.get("Labels") or {}).get(LABEL_ORG, ""),
                status=ContainerStatus(row.get("State", "exited")),
                created=row.get("Created"),
            )
            for row in rows
        ]

    def _list_volumes(self, instance: str) -> list[VolumeInfo]:
        answer = self._api.volumes(filters={"label": f"{LABEL_INSTANCE}={instance}"})
        out = []
        for vol in answer.get("Volumes") or []:
            created = vol.get("CreatedAt")
            out.append(
                VolumeInfo(
                    environment_id=(vol.get("Labels") or {}).get(LABEL_ENV, ""),
                    name=vol["Name"],
                    created=datetime.fromisoformat(created).timestamp() if created else None,
                )
            )
        return out

    async def list_volumes(self, instance: str) -> list[VolumeInfo]:
        return await self._run(self._list_volumes, instance)

    def _remove_volume(self, name: str) -> None:
        # Its disk unmounted first: the engine then deletes the disk's file with it.
        if self.disk_root is not None and disks.exists(self.disk_root / name):
            disks.detach(self.disk_root / name)
        with contextlib.suppress(NotFound):
            self._api.remove_volume(name, force=True)

    async def remove_volume(self, name: str) -> None:
        await self._run(self._remove_volume, name)

    async def list_containers(self, instance: str) -> list[ContainerInfo]:
        return await self._run(self._list, instance)

    def engine(self) -> Engine:
        """This provider's engine connection and thread pool, for the optional
        abilities (exec, files, logs, stats) that share them."""
        return self._engine

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()
