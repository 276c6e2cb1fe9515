"""Optional abilities of a runtime, each a small protocol: running processes inside an
environment, its files, its workload's logs, and sampling its resource use. A
provider that cannot do one simply does not offer it."""

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from sandbay.domain.exec import OutputChunk, ProcessSpec
from sandbay.domain.files import ContentMatch, FileInfo, ReplaceOutcome
from sandbay.domain.metrics import ContainerSample


class ProcessHandle(Protocol):
    """One process started inside an environment (with its whole tree)."""

    @property
    def pid(self) -> int | None:
        """Its process id inside the environment (it leads its own session)."""
        ...

    @property
    def process_id(self) -> str | None:
        """The id it can be reattached by (once started)."""
        ...

    @property
    def offset(self) -> int:
        """Bytes of output before the first one this handle yields."""
        ...

    async def started(self) -> int | None:
        """Wait until it runs (its pid) or could not start (None)."""
        ...

    def output(self) -> AsyncIterator[OutputChunk]:
        """Output as produced, until every writer has gone; one consumer only."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def signal(self, signal: str) -> None:
        """Send `signal` to the process and everything it started."""
        ...

    async def kill(self) -> None:
        """SIGKILL the whole tree; the output ends soon after, whatever holds it open."""
        ...

    async def resize(self, cols: int, rows: int) -> None:
        """Resize its terminal (TTY processes only)."""
        ...

    async def wait(self) -> int | None:
        """The exit code once the output has ended (None if the engine has none)."""
        ...

    async def close(self) -> None:
        """Drop the connection (the process is not signalled)."""
        ...


class ProcessRunner(Protocol):
    async def spawn(self, environment_id: str, spec: ProcessSpec) -> ProcessHandle: ...

    async def attach(
        self, environment_id: str, process_id: str, *, offset: int = 0
    ) -> ProcessHandle:
        """Reattach to a kept process (`ProcessSpec.keep`): its output from byte
        `offset` (as far back as is kept), then live. NotFound if it is unknown."""
        ...


class FileSystem(Protocol):
    """Files inside an environment's container. Paths are absolute and normalised
    (`domain.files.normalize_path`); the engine resolves symlinks inside the
    container's root, never the host's."""

    async def stat(self, environment_id: str, path: str) -> FileInfo:
        """Metadata of `path` itself (a symlink is not followed); NotFound if absent."""
        ...

    async def read(self, environment_id: str, path: str) -> tuple[FileInfo, AsyncIterator[bytes]]:
        """A regular file's metadata and its bytes, streamed (symlinks are followed)."""
        ...

    async def write(
        self,
        environment_id: str,
        path: str,
        chunks: AsyncIterator[bytes],
        size: int,
        *,
        user: str | None,
    ) -> FileInfo:
        """Write exactly `size` bytes to `path` (parents are created); the file appears
        whole or not at all."""
        ...

    async def list_dir(
        self, environment_id: str, path: str, *, user: str | None, limit: int, depth: int = 1
    ) -> tuple[list[FileInfo], bool]:
        """Entries `depth` levels deep (1: the directory's own), directories first at
        depth 1, each directory's contents right after it when deeper."""
        ...

    async def find(
        self, environment_id: str, root: str, pattern: str, *, user: str | None, limit: int
    ) -> tuple[list[FileInfo], bool]: ...

    async def mkdir(
        self, environment_id: str, path: str, *, mode: str, user: str | None
    ) -> None: ...

    async def move(
        self, environment_id: str, source: str, destination: str, *, user: str | None
    ) -> None: ...

    async def remove(
        self, environment_id: str, path: str, *, recursive: bool, user: str | None
    ) -> None: ...

    async def search_content(
        self, environment_id: str, root: str, text: str, *, user: str | None, limit: int
    ) -> tuple[list[ContentMatch], bool]:
        """Lines holding `text` (literally) in the text files below `root` (or in the
        file `root`), skipping `.git`."""
        ...

    async def replace(
        self,
        environment_id: str,
        paths: list[str],
        pattern: str,
        value: str,
        *,
        user: str | None,
    ) -> list[ReplaceOutcome]:
        """Replace every literal `pattern` with `value` in each file; one outcome per
        file, in order (a file that fails does not stop the others)."""
        ...

    async def set_permissions(
        self,
        environment_id: str,
        path: str,
        *,
        mode: str | None,
        owner: str | None,
        group: str | None,
        user: str | None,
    ) -> FileInfo:
        """chmod and chown (None: unchanged); the path's entry afterwards."""
        ...


class GitRepos(Protocol):
    """The environment's own git, run as its user, one operation a call (the
    operations and their bodies are envd's, docs/envd.md). Credentials in `body`
    reach git through its askpass helper, never its command line or config."""

    async def git(
        self, environment_id: str, operation: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The operation's answer; InvalidRequest with git's own words when git fails,
        PathNotFound for a repository path that is not there."""
        ...


class LogReader(Protocol):
    async def logs(
        self,
        environment_id: str,
        *,
        follow: bool,
        since: float | None,
        tail: int | None,
        timestamps: bool,
        stdout: bool,
        stderr: bool,
    ) -> AsyncIterator[bytes]:
        """The workload's output (what its startup command printed), as stored by the
        engine; with `follow`, until the workload stops or the caller goes away.
        Errors (no such container) are raised here, before any byte is yielded."""
        ...


class MetricsSource(Protocol):
    async def sample(self, instance: str) -> list[ContainerSample]:
        """One sample of every running container of this installation."""
        ...

    def take_oom_exits(self) -> list[str]:
        """Environments whose container, sampled running before, has since ended
        killed by the OOM killer (the engine's OOMKilled); each reported once."""
        ...
