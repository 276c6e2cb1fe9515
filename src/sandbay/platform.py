"""`Platform`: the one object a sandbay process is built around, and the only thing
on `app.state`. It holds one service object per capability with its configuration
bound when it is built, the runtime, the database and the bus, and the loop manager
that runs this process's background jobs. Routes reach a capability through the
getters in `api/deps.py`; nothing else is built anywhere."""

import logging
import socket
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlparse

import asyncssh
import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from sandbay.api.v1.model_relay import relay_app
from sandbay.db import migrate
from sandbay.db.engine import create_engine
from sandbay.db.models import EnvironmentModel
from sandbay.db.session import create_sessionmaker
from sandbay.domain.egress import DomainPolicy
from sandbay.domain.work import LeaseLimits
from sandbay.gateway.preview.proxy import PreviewProxy
from sandbay.gateway.ssh.keys import load_host_key, public_line
from sandbay.gateway.ssh.server import GatewayConfig, SshGateway
from sandbay.kit.loops import Hint
from sandbay.reconciler.instances import InstanceProvisioningLoop
from sandbay.reconciler.manager import LoopManager, ReconcilerParts, add_reconciler_loops
from sandbay.reconciler.runners import RunnerWatch
from sandbay.runtime.archives import ArchiveStore, DirectoryArchiveStore, S3ArchiveStore
from sandbay.runtime.build_contexts import BuildContextStore, S3BuildContexts, ScopedKeys
from sandbay.runtime.docker.network import bridge_gateway
from sandbay.runtime.docker.runtime import DockerRuntime
from sandbay.runtime.docker.swarm import DockerSwarm
from sandbay.runtime.egress import EgressGateway, Resolver
from sandbay.services.access.network import NetworkEnforcer
from sandbay.services.access.origin import PublicAddress
from sandbay.services.access.preview import PreviewGate
from sandbay.services.access.service import AccessService
from sandbay.services.access.ssh import TtlLimits
from sandbay.services.agents.gateway import InstanceProvisioner
from sandbay.services.agents.relay import ModelRelay, RelayKeys, RelayListener
from sandbay.services.agents.runs import AgentRuns
from sandbay.services.agents.secrets import SecretBox, load_key
from sandbay.services.agents.service import Agents
from sandbay.services.egress.policy import domain_policy
from sandbay.services.environments.activity import ActivityHolds
from sandbay.services.environments.lifecycle import Lifecycle
from sandbay.services.environments.records import Placement
from sandbay.services.environments.service import EnvironmentsService
from sandbay.services.environments.snapshots import SnapshotsService
from sandbay.services.environments.wake import Waker
from sandbay.services.events.bus import EventBus
from sandbay.services.events.relay import EventRelay
from sandbay.services.events.service import EventsService
from sandbay.services.images.service import ImagesService
from sandbay.services.inside.interpreter import Interpreters
from sandbay.services.inside.lsp import LanguageServers
from sandbay.services.inside.processes import ProcessRegistry
from sandbay.services.inside.service import ExecLimits, InsideService
from sandbay.services.runners.placement import SwarmPlacer
from sandbay.services.runners.routing import RoutedLocator, adopt_environments, agent_token
from sandbay.services.runners.service import RunnersService
from sandbay.services.tenancy.auth import KeyCache, ensure_bootstrap
from sandbay.services.tenancy.service import TenancyService
from sandbay.services.volumes.service import VolumesService
from sandbay.services.work.service import WorkService
from sandbay.settings import Settings, env_name

log = logging.getLogger("sandbay")


class Role(StrEnum):
    """What a process runs besides the services: `serve` (the API, and the loops
    unless `reconciler.enabled` is off), `reconciler` (the loops alone) or
    `ssh-gateway` (the gateway alone)."""

    SERVE = "serve"
    RECONCILER = "reconciler"
    SSH_GATEWAY = "ssh-gateway"


def _secret(value: object) -> str | None:
    return value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]


def archive_store(settings: Settings) -> ArchiveStore:
    """A directory by default; an S3-compatible bucket when `archive.s3_url` is set."""
    archive = settings.archive
    if archive.s3_url:
        parsed = urlparse(archive.s3_url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"{env_name('archive', 's3_url')} must look like s3://bucket/prefix")
        return S3ArchiveStore(
            bucket=parsed.netloc,
            prefix=parsed.path,
            staging_root=settings.data_dir / "archive-staging",
            endpoint_url=archive.s3_endpoint,
            region=archive.s3_region,
        )
    return DirectoryArchiveStore(archive.dir or settings.data_dir / "archives")


def build_context_store(settings: Settings) -> BuildContextStore | None:
    """The bucket that receives builds' local files, if one is configured; its
    endpoint and region default to the archive's (one S3 service)."""
    storage, archive = settings.object_storage, settings.archive
    if not storage.bucket or not storage.access_key_id or not storage.secret_access_key:
        return None
    return S3BuildContexts(
        bucket=storage.bucket,
        prefix=storage.prefix,
        access_key_id=storage.access_key_id,
        secret_access_key=storage.secret_access_key.get_secret_value(),
        endpoint=storage.endpoint or archive.s3_endpoint,
        public_endpoint=storage.public_endpoint,
        region=storage.region or archive.s3_region or "us-east-1",
        scoped=ScopedKeys(
            role_arn=storage.role_arn,
            endpoint=storage.sts_endpoint,
            seconds=storage.session_seconds,
        )
        if storage.scoped_credentials
        else None,
    )


@dataclass
class Platform:
    settings: Settings
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    runtime: DockerRuntime
    holds: ActivityHolds
    tenancy: TenancyService
    events: EventsService
    environments: EnvironmentsService
    inside: InsideService
    access: AccessService
    work: WorkService
    agents: Agents
    preview: PreviewProxy
    #: Wakes sleeping environments with `wake_on_request` for the gateways.
    waker: Waker
    host_key: asyncssh.SSHKey
    loops: LoopManager
    images: ImagesService
    volumes: VolumesService
    interpreters: Interpreters
    language_servers: LanguageServers
    #: Encrypts what the server must read back (credentials, file-URL signing keys).
    secrets: SecretBox
    snapshots: SnapshotsService
    #: The hosts behind the engine (Swarm nodes, or this host alone): list, drain.
    runners: RunnersService

    @classmethod
    async def open(cls, settings: Settings, role: Role = Role.SERVE) -> "Platform":
        s = settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        db = create_engine(s.resolved_database_url(), sqlite_inline=s.sqlite_inline)
        await migrate.upgrade(db)
        bus = EventBus()
        key_cache = KeyCache(s.auth_cache_seconds)
        inline = s.sqlite_inline and db.dialect.name == "sqlite"
        sessions = create_sessionmaker(db, info={"bus": bus, "key_cache": key_cache}, inline=inline)
        if bootstrap := _secret(s.bootstrap_key):
            async with sessions() as session:
                await ensure_bootstrap(session, bootstrap)
                await session.commit()
        box = SecretBox(load_key(_secret(s.secrets_key), s.data_dir))
        egress = EgressGateway(
            Resolver(s.network.egress_hosts),
            seed=box.derive_key("egress-ca"),
            upstream_ca=str(s.network.egress_ca_bundle) if s.network.egress_ca_bundle else None,
        )

        async def load_domain_policy(session: AsyncSession, env: EnvironmentModel) -> DomainPolicy:
            return await domain_policy(session, env, box)

        token = agent_token(box.derive_key("envd-token"))
        runtime = DockerRuntime.open(
            runner_id=s.runner_id,
            agent_dir=s.inside.agent_dir,
            base_url=s.docker_host,
            threads=s.engine_threads,
            cgroups=s.metrics.from_cgroups,
            agent_ready_timeout=s.inside.agent_ready_timeout,
            disk_limits=s.disk_limits,
            egress=egress,
            agent_token=token,
        )
        swarm = DockerSwarm(runtime.provider, s.runner_id)
        if (node_id := runtime.provider.node_id) is not None:
            # A Swarm node: it is the runner named by its node id; environments made
            # here before it joined (named by the host) are its own (docs/scaling.md).
            async with sessions() as session:
                await adopt_environments(session, {s.runner_id, socket.gethostname()}, node_id)
                await session.commit()
            s = s.model_copy(update={"runner_id": node_id})
            routed = RoutedLocator(
                runtime.channel.locator,
                local_runners={node_id},
                sessions=sessions,
                token=token,
                runners=swarm,
            )
            runtime = runtime.routed(routed)
        holds = ActivityHolds()
        contexts = build_context_store(s)
        environments = EnvironmentsService(
            lifecycle=Lifecycle(sessions, bus, stop_timeout=s.default_stop_timeout),
            provider=runtime.provider,
            placement=Placement(
                runner_id=s.runner_id,
                default_image=s.default_image,
                default_runtime=s.default_runtime,
                warm_pools=tuple(s.pools.warm),
                build_contexts=contexts is not None,
                cluster=SwarmPlacer(swarm) if node_id is not None else None,
            ),
            resources=runtime.resources,
        )
        inside = InsideService(
            sessions=sessions,
            bus=bus,
            runner=runtime.runner,
            files=runtime.files,
            git=runtime.git,
            logs=runtime.logs,
            processes=ProcessRegistry(
                runtime.runner,
                output_limit=s.inside.process_output_limit_bytes,
                keep_exited=s.inside.processes_kept_exited,
                holds=holds,
            ),
            limits=ExecLimits(
                default_timeout=s.inside.exec_default_timeout,
                output_limit_bytes=s.inside.exec_output_limit_bytes,
            ),
            holds=holds,
        )
        host_key = load_host_key(s.ssh.host_key or s.data_dir / "ssh_host_ed25519_key")
        gate = PreviewGate(sessions)
        access = AccessService(
            sessions=sessions,
            network=NetworkEnforcer(
                sessions,
                runtime.network,
                s.runner_id,
                egress=egress,
                domain_policy=load_domain_policy,
            ),
            gate=gate,
            ssh_host_key=public_line(host_key),
            ssh_fingerprint=host_key.get_fingerprint("sha256"),
            ssh_public_host=s.ssh.public_host,
            ssh_public_port=s.ssh.public_port or s.ssh.port,
            ssh_ttl=TtlLimits(s.ssh.credential_ttl, s.ssh.credential_max_ttl),
            preview_ttl=TtlLimits(s.preview.token_ttl, s.preview.token_max_ttl),
            preview_domain=s.preview.domain,
            preview_port=s.preview.port,
            address=PublicAddress.of(s.http.public_url, s.http.forwarded_allow_ips),
        )
        # Model calls (the built-in agent's, and the relay's): long answers stream slowly.
        model_http = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=10.0))
        locator = runtime.channel.locator

        async def locate(environment_id: str, fresh: bool) -> str:
            return (await locator.locate(environment_id, fresh=fresh)).host

        relay = ModelRelay(sessions, box, RelayKeys(box), model_http, locate)
        agents = Agents(
            sessions=sessions,
            inside=inside,
            environments=environments,
            box=box,
            runs=AgentRuns(sessions, holds, keep_events=s.agent.runs_kept_events),
            http=model_http,
            provisioner=InstanceProvisioner(sessions, inside, box, relay),
            relay=relay,
            provision_soon=Hint(),
            default_timeout=s.agent.timeout,
            agent_image=s.agent.image,
            public_url=s.agent.public_url,
        )
        waker = Waker(
            sessions=sessions,
            lifecycle=environments.lifecycle,
            ports=runtime.ports,
            timeout=s.wake_timeout,
        )
        work = WorkService(
            sessions,
            limits=LeaseLimits(
                min_ttl=s.work.min_ttl_seconds,
                max_ttl=max(s.work.min_ttl_seconds, s.work.max_ttl_seconds),
                default_ttl=s.work.default_ttl_seconds,
            ),
        )
        platform = cls(
            settings=s,
            db=db,
            sessions=sessions,
            bus=bus,
            runtime=runtime,
            holds=holds,
            tenancy=TenancyService(sessions, key_cache, admin_key=_secret(s.admin_key)),
            events=EventsService(sessions, bus),
            environments=environments,
            inside=inside,
            access=access,
            work=work,
            agents=agents,
            preview=PreviewProxy(
                gate=gate, ports=runtime.ports, holds=holds, domain=s.preview.domain, waker=waker
            ),
            waker=waker,
            host_key=host_key,
            loops=LoopManager(bus),
            images=ImagesService(sessions, due=Hint(), contexts=contexts),
            volumes=VolumesService(removed=Hint()),
            interpreters=Interpreters(sessions, runtime.runner, holds),
            language_servers=LanguageServers(sessions, runtime.runner, runtime.files),
            secrets=box,
            snapshots=SnapshotsService(environments),
            runners=RunnersService(swarm),
        )
        platform._register(role)
        return platform

    def _register(self, role: Role) -> None:
        """This process's bus listeners and background jobs, in one place."""
        s, loops = self.settings, self.loops
        for listener in (
            self.inside.processes.on_event,
            self.interpreters.on_event,
            self.language_servers.on_event,
            self.inside.shells.on_event,
            self.access.gate.on_event,
            self.access.network.on_event,
            self.work.wakeups.on_event,
        ):
            loops.listen(listener)
        if role is Role.RECONCILER or (role is Role.SERVE and s.reconciler.enabled):
            parts = ReconcilerParts(
                sessions=self.sessions,
                runtime=self.runtime,
                store=archive_store(s),
                holds=self.holds,
                environments=self.environments,
                network=self.access.network,
                images=self.images,
                volumes=self.volumes,
                snapshots=DirectoryArchiveStore(s.data_dir / "snapshots"),
            )
            add_reconciler_loops(loops, s, parts)
        if self.db.dialect.name == "postgresql":
            # Other processes' events (a runner on another host, another replica).
            loops.add(EventRelay(s.resolved_database_url(), self.sessions, self.bus))
        if role is not Role.SSH_GATEWAY and self.runtime.provider.swarm_manager:
            loops.add(RunnerWatch(self.sessions, self.runners.source, s.reconciler.runner_interval))
        if role is Role.SERVE:
            loops.add(
                InstanceProvisioningLoop(
                    self.agents.provisioner, self.agents.provision_soon, interval=1.0
                )
            )
            loops.add(self.model_relay_listener())
        if role is Role.SSH_GATEWAY or (role is Role.SERVE and s.ssh.enabled):
            gateway = self.ssh_gateway()
            loops.add(gateway, on_event=gateway.on_event)

    def model_relay_listener(self) -> RelayListener:
        """The model relay's own listener (docs/model-relay.md): by default on the
        engine bridge's gateway, the address environments reach the host by."""
        agent, engine = self.settings.agent, self.runtime.engine

        async def bind() -> str | None:
            if agent.relay_bind is not None:
                return agent.relay_bind or None
            return await bridge_gateway(engine)

        return RelayListener(
            self.agents.relay,
            relay_app(self.agents.relay),
            bind=bind,
            port=agent.relay_port,
            advertised=agent.relay_url,
        )

    def ssh_gateway(self) -> SshGateway:
        s = self.settings
        return SshGateway(
            sessions=self.sessions,
            holds=self.holds,
            runner=self.runtime.runner,
            ports=self.runtime.ports,
            files=self.runtime.file_agent,
            config=GatewayConfig(
                bind=s.ssh.bind or s.host,
                port=s.ssh.port,
                host_key=self.host_key,
                sweep_interval=s.ssh.sweep_interval,
            ),
            waker=self.waker,
        )

    async def start(self) -> None:
        await self.loops.start()

    async def close(self) -> None:
        await self.loops.stop()
        await self.access.network.close()
        await self.preview.close()
        await self.agents.close()
        await self.inside.processes.close()
        await self.interpreters.close()
        await self.language_servers.close()
        await self.runtime.close()
        await self.db.dispose()
