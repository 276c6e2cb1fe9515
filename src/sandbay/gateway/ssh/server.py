"""The SSH gateway (asyncssh): one port for every environment. The username is the
environment id; a short-lived credential (its password token, or its one-time key)
logs in while the environment runs. A Daytona SSH token is itself the user name and
needs nothing else. A login is refused with the reason while it
does not run, unless it has `wake_on_request` and sleeps: then the login is accepted
and its sessions wait (bounded) while it is started or resumed (`Waker`). Open
connections are closed when it stops or the credential is revoked: at once through
the event bus, and within `sweep_interval` through a database sweep (which also
covers changes made by other processes).

Each login is an event and holds the environment's activity while it lasts."""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import asyncssh

from sandbay.domain import ids
from sandbay.domain.environments import Event
from sandbay.domain.errors import SandbayError
from sandbay.domain.states import EnvState
from sandbay.gateway.ssh.session import open_forward, run_process
from sandbay.gateway.ssh.sftp import EnvironmentSFTP
from sandbay.kit.loops import PeriodicLoop
from sandbay.runtime.access import FileAgent, PortConnector
from sandbay.runtime.inside import ProcessRunner
from sandbay.services.access import ssh as creds
from sandbay.services.access import ssh_tokens as tokens
from sandbay.services.access.ssh import Login
from sandbay.services.environments.activity import ActivityHolds
from sandbay.services.environments.wake import WakeCause, Waker
from sandbay.services.inside.target import touch

log = logging.getLogger(__name__)
_TOUCH_EVERY_S = 30.0
#: Between telling sessions why they end and dropping the connection.
_DISCONNECT_DELAY_S = 1.0


class _UserNameFilter(logging.Filter):
    """asyncssh logs every login's user name at INFO, and a Daytona SSH token *is*
    the user name: a user name that is not an environment id (a token, or whatever
    a client typed) is written as `[redacted]`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "user %s" in str(record.msg) and isinstance(record.args, tuple):
            record.args = tuple(
                a if not isinstance(a, str) or ids.has_prefix(a, ids.ENVIRONMENT) else "[redacted]"
                for a in record.args
            )
        return True


def _redact_user_names() -> None:
    logger = logging.getLogger("asyncssh")
    if not any(isinstance(f, _UserNameFilter) for f in logger.filters):
        logger.addFilter(_UserNameFilter())


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    bind: str
    port: int
    host_key: asyncssh.SSHKey
    sweep_interval: float = 5.0
    login_timeout: float = 30.0


class _Connection(asyncssh.SSHServer):
    """One client connection: authentication, then what it may open."""

    def __init__(self, gateway: "SshGateway") -> None:
        self._gateway = gateway
        self.conn: asyncssh.SSHServerConnection | None = None
        self.peer = "?"
        self.login: Login | None = None
        self.method = ""
        self.processes: set[asyncssh.SSHServerProcess[bytes]] = set()
        self._hold: contextlib.ExitStack | None = None
        self._closing = False
        self._lost = False
        self._wake = False  # the login is good, the environment sleeps: wake it
        #: Done once the environment runs (at once, unless it is being woken).
        self._ready: asyncio.Task[bool] | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._ready is not None:
            self._ready.cancel()
        self._gateway.forget(self)
        if self._hold is not None:
            self._hold.close()

    async def begin_auth(self, username: str) -> bool:
        """A Daytona SSH token as the user name logs in without any method (False:
        no authentication needed); every other user name authenticates."""
        login = await tokens.check_token(self._gateway.sessions, username)
        if login is None:
            return True
        return not await self._accept(login, "token")

    def password_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        login = await creds.check_password(self._gateway.sessions, username, password)
        return await self._accept(login, "password")

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        fingerprint = key.get_fingerprint("sha256")
        login = await creds.check_key(self._gateway.sessions, username, fingerprint)
        return await self._accept(login, "publickey")

    async def _accept(self, login: Login | None, method: str) -> bool:
        if login is None:
            return False
        if login.state is not EnvState.RUNNING and await self._gateway.wakeable(login):
            self._wake = True
        elif login.state is not EnvState.RUNNING:
            # The credential is good: say why it cannot be used now.
            raise asyncssh.DisconnectError(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                f"environment {login.environment_id} is {login.state.value}: "
                "SSH is open only while it runs",
            )
        self.login, self.method = login, method
        return True

    def auth_completed(self) -> None:
        assert self.login is not None
        self._hold = contextlib.ExitStack()
        self._hold.enter_context(self._gateway.holds.hold(self.login.environment_id))
        if self._wake:
            self._ready = self._gateway.spawn(self._woken())
        else:
            self._gateway.admit(self)

    async def _woken(self) -> bool:
        """Wake the environment, then admit the connection; on failure close it with
        the reason (sessions opened meanwhile hear it on their stderr)."""
        assert self.login is not None
        cause = WakeCause(
            by="ssh", client=self.peer, credential_id=self.login.credential_id, method=self.method
        )
        try:
            await self._gateway.wake(self.login, cause)
        except Exception as exc:
            reason = exc.message if isinstance(exc, SandbayError) else "an internal error"
            if not isinstance(exc, SandbayError):
                log.exception("wake of %s failed", self.login.environment_id)
            self.close(f"environment {self.login.environment_id} did not wake: {reason}")
            return False
        if self._lost:
            return False
        self.login = replace(self.login, state=EnvState.RUNNING)
        self._gateway.admit(self)
        return True

    async def ready(self) -> bool:
        """Whether sessions may run: at once, or once a wake has finished."""
        if self._ready is None:
            return True
        try:
            return await asyncio.shield(self._ready)
        except asyncio.CancelledError:
            if self._ready.cancelled():
                return False
            raise

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Any:
        assert self.login is not None
        if self._ready is None:
            return open_forward(self._gateway.ports, self.login, dest_host, dest_port)
        return self._forward_when_ready(dest_host, dest_port)

    async def _forward_when_ready(self, dest_host: str, dest_port: int) -> Any:
        if not await self.ready():
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_CONNECT_FAILED, "the environment did not wake"
            )
        assert self.login is not None
        return await open_forward(self._gateway.ports, self.login, dest_host, dest_port)

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False  # -R would expose a port on the gateway's host: not offered

    def close(self, reason: str) -> None:
        """End the connection, telling each session why on its stderr first: a
        disconnect alone aborts the socket, and a client that had data in flight
        would never see the reason."""
        if self.conn is None or self._closing:
            return
        self._closing = True
        for process in list(self.processes):
            with contextlib.suppress(Exception):
                process.stderr.write(f"\r\nsandbay: {reason}\r\n".encode())
                process.exit(255)
        conn = self.conn
        asyncio.get_running_loop().call_later(
            _DISCONNECT_DELAY_S, conn.disconnect, asyncssh.DISC_BY_APPLICATION, reason
        )


def _owner(chan_or_process: Any) -> _Connection:
    owner = chan_or_process.get_extra_info("connection").get_owner()
    assert isinstance(owner, _Connection)
    return owner


def _login(chan_or_process: Any) -> Login:
    """The login of the connection a channel belongs to (channels open after auth)."""
    login = _owner(chan_or_process).login
    assert login is not None
    return login


class _Sweeper(PeriodicLoop):
    """The gateway's periodic sweep, started and stopped with the gateway."""

    name = "ssh-gateway-sweep"

    def __init__(self, gateway: "SshGateway", interval: float) -> None:
        super().__init__(interval)
        self._gateway = gateway

    async def sweep(self) -> None:
        await self._gateway.sweep()


class SshGateway:
    """The gateway server and the connections it holds, by environment."""

    name = "ssh-gateway"

    def __init__(
        self,
        *,
        sessions: Any,
        holds: ActivityHolds,
        runner: ProcessRunner,
        ports: PortConnector,
        files: FileAgent,
        config: GatewayConfig,
        waker: Waker | None = None,
    ) -> None:
        self.sessions = sessions
        self.waker = waker
        self.holds = holds
        self.ports = ports
        self._runner = runner
        self._files = files
        self._config = config
        self._open: dict[str, set[_Connection]] = {}
        self._server: asyncssh.SSHAcceptor | None = None
        self._sweeper = _Sweeper(self, config.sweep_interval)
        self._touched = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            return self._config.port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        _redact_user_names()
        self._server = await asyncssh.create_server(
            lambda: _Connection(self),
            self._config.bind,
            self._config.port,
            server_host_keys=[self._config.host_key],
            process_factory=self._process,
            sftp_factory=self._sftp,
            allow_scp=True,
            encoding=None,
            line_editor=False,
            agent_forwarding=False,
            x11_forwarding=False,
            login_timeout=self._config.login_timeout,
            server_version="sandbay",
        )
        await self._sweeper.start()
        log.info("SSH gateway listening on %s:%d", self._config.bind, self.port)

    async def stop(self) -> None:
        await self._sweeper.stop()
        for conns in list(self._open.values()):
            for conn in list(conns):
                conn.close("the server is shutting down")
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- sessions ------------------------------------------------------------------

    async def _process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        owner = _owner(process)
        owner.processes.add(process)
        try:
            if not await owner.ready():
                return  # the connection is closing and has told the session why
            assert owner.login is not None
            await run_process(process, owner.login, self._runner)
        finally:
            owner.processes.discard(process)

    async def _sftp(self, chan: asyncssh.SSHServerChannel[bytes]) -> EnvironmentSFTP:
        if not await _owner(chan).ready():
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_CONNECT_FAILED, "the environment did not wake"
            )
        login = _login(chan)
        files = await self._files.open_session(login.environment_id, user=login.user)
        return EnvironmentSFTP(chan, files)

    # ---- wake on request -----------------------------------------------------------

    async def wakeable(self, login: Login) -> bool:
        return self.waker is not None and await self.waker.wakeable(login.environment_id)

    async def wake(self, login: Login, cause: WakeCause) -> None:
        assert self.waker is not None
        await self.waker.wake(login.org_id, login.environment_id, cause)

    # ---- connections by environment -------------------------------------------------

    def admit(self, conn: _Connection) -> None:
        assert conn.login is not None
        self._open.setdefault(conn.login.environment_id, set()).add(conn)
        self.spawn(
            creds.record_login(self.sessions, conn.login, method=conn.method, peer=conn.peer)
        )

    def forget(self, conn: _Connection) -> None:
        if conn.login is None:
            return
        conns = self._open.get(conn.login.environment_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._open[conn.login.environment_id]

    def _close(self, environment_id: str, reason: str, credential_id: str | None = None) -> None:
        for conn in list(self._open.get(environment_id, ())):
            if credential_id is None or (conn.login and conn.login.credential_id == credential_id):
                conn.close(reason)

    def on_event(self, event: Event) -> None:
        """Bus listener: close at once what a stop or a revocation ends."""
        env_id = event.environment_id
        if env_id is None or env_id not in self._open:
            return
        if event.type == "environment.state_changed" and event.to_state != EnvState.RUNNING:
            self._close(env_id, f"environment {env_id} is {event.to_state}")
        elif event.type == "environment.ssh_credential_revoked":
            credential = str(event.data.get("credential_id", ""))
            self._close(env_id, "the SSH credential was revoked", credential)

    async def sweep(self) -> None:
        """Close what the bus may not have told us about (other processes' changes);
        now and then, count open sessions as activity."""
        await self._close_stale()
        if time.monotonic() - self._touched > _TOUCH_EVERY_S:
            self._touched = time.monotonic()
            for env_id in list(self._open):
                await touch(self.sessions, env_id)

    async def _close_stale(self) -> None:
        if not self._open:
            return
        states = await creds.environment_states(self.sessions, list(self._open))
        for env_id in list(self._open):
            state = states.get(env_id, EnvState.DELETED)
            if state is not EnvState.RUNNING:
                self._close(env_id, f"environment {env_id} is {state}")
        logins = [c.login.credential_id for cs in self._open.values() for c in cs if c.login]
        for credential_id in await creds.revoked(self.sessions, logins):
            for env_id in list(self._open):
                self._close(env_id, "the SSH credential was revoked", credential_id)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """A task the gateway cancels when it stops."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
