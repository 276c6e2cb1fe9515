"""The contracts of the abilities inside an environment (`runtime.inside`): processes,
files, the workload's logs and resource samples. See `tests/runtime/contract.py`."""

import posixpath
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from sandbay.domain.errors import Conflict, ContainerNotFound, InvalidRequest, NotFound
from sandbay.domain.exec import ProcessSpec
from sandbay.domain.files import FileType
from sandbay.domain.runtime import ContainerSpec
from sandbay.runtime.inside import (
    FileSystem,
    LogReader,
    MetricsSource,
    ProcessHandle,
    ProcessRunner,
)
from sandbay.runtime.provider import RuntimeProvider
from tests.runtime.contract import (
    KILLED,
    LOOP,
    MIB,
    ContractBase,
    Environments,
    eventually,
    sh,
    unknown_environment,
)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def collect(proc: ProcessHandle) -> dict[str, bytes]:
    out = {"stdout": b"", "stderr": b""}
    async for chunk in proc.output():
        out[chunk.stream] += chunk.data
    return out


async def finished(proc: ProcessHandle) -> tuple[dict[str, bytes], int | None]:
    """Everything the process printed on each stream, then its exit code; the handle
    is closed afterwards."""
    out = await collect(proc)
    code = await proc.wait()
    await proc.close()
    return out, code


class ProcessRunnerContract(ContractBase):
    """`ProcessRunner` / `ProcessHandle`: processes inside a running workload."""

    async def test_a_process_reports_its_pid_output_and_exit_code(
        self, runner: ProcessRunner, shared: ContainerSpec
    ) -> None:
        argv = ["/bin/sh", "-c", "echo out; echo err >&2; exit 4"]
        proc = await runner.spawn(shared.environment_id, ProcessSpec(argv=argv))
        pid = await proc.started()
        assert pid is not None and pid > 1 and proc.pid == pid
        assert await finished(proc) == ({"stdout": b"out\n", "stderr": b"err\n"}, 4)

    async def test_a_process_reads_its_stdin_until_it_is_closed(
        self, runner: ProcessRunner, shared: ContainerSpec
    ) -> None:
        proc = await runner.spawn(shared.environment_id, ProcessSpec(argv=["cat"], stdin=True))
        await proc.write(b"to ")
        await proc.write(b"cat")
        await proc.close_stdin()
        assert await finished(proc) == ({"stdout": b"to cat", "stderr": b""}, 0)

    async def test_a_process_runs_in_its_cwd_with_its_env_and_user(
        self, runner: ProcessRunner, shared: ContainerSpec
    ) -> None:
        spec = ProcessSpec(
            argv=["/bin/sh", "-c", 'pwd; echo "$CONTRACT_VAR $EXTRA"; id -un'],
            env={"EXTRA": "extra"},
            cwd="/tmp",
            user="nobody",
        )
        proc = await runner.spawn(shared.environment_id, spec)
        out, code = await finished(proc)
        assert out["stdout"].decode().splitlines() == ["/tmp", "contract-value extra", "nobody"]
        assert code == 0

    async def test_a_signal_reaches_the_process(
        self, runner: ProcessRunner, shared: ContainerSpec
    ) -> None:
        script = f"trap 'exit 5' TERM; echo ready; {LOOP}"
        proc = await runner.spawn(
            shared.environment_id, ProcessSpec(argv=["/bin/sh", "-c", script])
        )
        output = proc.output()
        assert (await anext(output)).data == b"ready\n"
        await proc.signal("SIGTERM")  # its sleep too: the shell may say "Terminated"
        assert [c.data async for c in output if c.stream == "stdout"] == []
        assert await proc.wait() == 5  # its own trap ran

    async def test_kill_ends_the_process_and_everything_it_started(
        self, provider: RuntimeProvider, runner: ProcessRunner, shared: ContainerSpec
    ) -> None:
        script = "sleep 1234 & sleep 1234 & echo ready; wait"
        proc = await runner.spawn(
            shared.environment_id, ProcessSpec(argv=["/bin/sh", "-c", script])
        )
        output = proc.output()
        assert (await anext(output)).data == b"ready\n"
        await proc.kill()
        assert [c async for c in output] == []
        assert await proc.wait() == KILLED
        count = "cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -c '^sleep 1234' || true"

        async def gone() -> bool:
            return await sh(provider, shared.environment_id, count) == "0\n"

        await eventually(gone)

    async def test_a_tty_process_gets_a_terminal_that_can_be_resized(
        self, runner: ProcessRunner, shared: ContainerSpec
    ) -> None:
        spec = ProcessSpec(argv=["/bin/sh", "-c", "read go; stty size"], tty=True, stdin=True)
        proc = await runner.spawn(shared.environment_id, spec)
        await proc.started()
        await proc.resize(123, 45)
        await proc.write(b"go\n")
        out, code = await finished(proc)
        assert b"45 123" in out["stdout"] and out["stderr"] == b""
        assert code == 0

    async def test_a_process_in_a_missing_directory_cannot_start(
        self, runner: ProcessRunner, shared: ContainerSpec
    ) -> None:
        spec = ProcessSpec(argv=["true"], cwd="/no/such/dir")
        proc = await runner.spawn(shared.environment_id, spec)
        assert await proc.started() is None
        with pytest.raises(InvalidRequest):
            await proc.wait()

    async def test_spawn_needs_a_running_workload(
        self, runner: ProcessRunner, envs: Environments
    ) -> None:
        stopped = await envs.created()
        with pytest.raises(Conflict):
            await runner.spawn(stopped.environment_id, ProcessSpec(argv=["true"]))
        with pytest.raises(ContainerNotFound):
            await runner.spawn(unknown_environment(), ProcessSpec(argv=["true"]))


class FileSystemContract(ContractBase):
    """`FileSystem`: files of a running workload, each test in a directory of its own."""

    async def test_a_written_file_can_be_stat_and_read_back(
        self, files: FileSystem, shared: ContainerSpec, workdir: str
    ) -> None:
        env, path = shared.environment_id, f"{workdir}/deep/er/file.txt"
        written = await files.write(env, path, chunks(b"hello ", b"world"), 11, user=None)
        assert (written.path, written.name, written.type, written.size) == (
            path,
            "file.txt",
            FileType.FILE,
            11,
        )
        stat = await files.stat(env, path)
        assert stat.type is FileType.FILE and stat.size == 11 and not stat.is_dir
        info, body = await files.read(env, path)
        assert info.size == 11 and b"".join([c async for c in body]) == b"hello world"
        parent = await files.stat(env, f"{workdir}/deep/er")
        assert parent.is_dir and parent.type is FileType.DIRECTORY

    async def test_a_write_replaces_the_file_whole_or_not_at_all(
        self, files: FileSystem, shared: ContainerSpec, workdir: str
    ) -> None:
        env, path = shared.environment_id, f"{workdir}/f"
        await files.write(env, path, chunks(b"first version"), 13, user=None)
        await files.write(env, path, chunks(b"second"), 6, user=None)
        _, body = await files.read(env, path)
        assert b"".join([c async for c in body]) == b"second"
        with pytest.raises(InvalidRequest):
            await files.write(env, path, chunks(b"too long"), 3, user=None)
        with pytest.raises(InvalidRequest):
            await files.write(env, f"{workdir}/short", chunks(b"ab"), 3, user=None)
        names = [e.name for e in (await files.list_dir(env, workdir, user=None, limit=100))[0]]
        assert names == ["f"]  # no partial file, no leftover temporary
        assert (await files.stat(env, path)).size == 6

    async def test_listing_and_search_see_what_is_there(
        self, files: FileSystem, shared: ContainerSpec, workdir: str
    ) -> None:
        env = shared.environment_id
        for name in ("b.txt", "a.txt", "sub/c.txt", "sub/d.log"):
            await files.write(env, f"{workdir}/{name}", chunks(b"x"), 1, user=None)
        entries, truncated = await files.list_dir(env, workdir, user=None, limit=100)
        assert [e.name for e in entries] == ["sub", "a.txt", "b.txt"] and not truncated
        assert entries[1].owner == "root" and entries[1].size == 1
        entries, truncated = await files.list_dir(env, workdir, user=None, limit=2)
        assert len(entries) == 2 and truncated
        found, truncated = await files.find(env, workdir, "*.txt", user=None, limit=100)
        assert sorted(e.path for e in found) == [
            f"{workdir}/a.txt",
            f"{workdir}/b.txt",
            f"{workdir}/sub/c.txt",
        ]
        assert not truncated

    async def test_mkdir_move_and_remove_change_the_tree(
        self, files: FileSystem, shared: ContainerSpec, workdir: str
    ) -> None:
        env = shared.environment_id
        await files.mkdir(env, f"{workdir}/d/e", mode="0700", user=None)
        assert (await files.stat(env, f"{workdir}/d/e")).mode == "0700"
        await files.write(env, f"{workdir}/d/f", chunks(b"moved"), 5, user=None)
        await files.move(env, f"{workdir}/d/f", f"{workdir}/g", user=None)
        with pytest.raises(NotFound):
            await files.stat(env, f"{workdir}/d/f")
        assert (await files.stat(env, f"{workdir}/g")).size == 5
        with pytest.raises(Conflict):
            await files.remove(env, workdir, recursive=False, user=None)  # not empty
        await files.remove(env, f"{workdir}/g", recursive=False, user=None)
        await files.remove(env, workdir, recursive=True, user=None)
        with pytest.raises(NotFound):
            await files.stat(env, workdir)

    async def test_reading_follows_symlinks_and_stat_does_not(
        self, provider: RuntimeProvider, files: FileSystem, shared: ContainerSpec, workdir: str
    ) -> None:
        env = shared.environment_id
        await files.write(env, f"{workdir}/target", chunks(b"pointed at"), 10, user=None)
        await sh(provider, env, f"ln -s target {workdir}/link")
        link = await files.stat(env, f"{workdir}/link")
        assert link.type is FileType.SYMLINK and link.link_target
        # As written ("target") or resolved: either way, the file beside it.
        assert posixpath.normpath(posixpath.join(workdir, link.link_target)) == f"{workdir}/target"
        info, body = await files.read(env, f"{workdir}/link")
        assert info.type is FileType.FILE and b"".join([c async for c in body]) == b"pointed at"

    async def test_files_are_written_as_the_given_user(
        self, provider: RuntimeProvider, files: FileSystem, shared: ContainerSpec
    ) -> None:
        env, path = shared.environment_id, f"/tmp/t-{uuid.uuid4().hex[:12]}/mine"
        await files.write(env, path, chunks(b"mine"), 4, user="nobody")
        out = await sh(provider, env, f"stat -c %U {path} $(dirname {path})")
        assert out.split() == ["nobody", "nobody"]

    async def test_bad_paths_raise_domain_errors(
        self, files: FileSystem, shared: ContainerSpec, workdir: str
    ) -> None:
        env = shared.environment_id
        with pytest.raises(NotFound):
            await files.stat(env, f"{workdir}/missing")
        with pytest.raises(NotFound):
            await files.read(env, f"{workdir}/missing")
        with pytest.raises(InvalidRequest):
            await files.read(env, "/workspace")  # a directory
        with pytest.raises(InvalidRequest):
            await files.write(env, "/", chunks(b"x"), 1, user=None)
        with pytest.raises(InvalidRequest):
            await files.list_dir(env, "/etc/hostname", user=None, limit=10)


class LogReaderContract(ContractBase):
    """`LogReader`: what the workload's startup command printed."""

    async def _stream(
        self, logs: LogReader, environment_id: str, **kw: Any
    ) -> AsyncIterator[bytes]:
        """The logs of both streams, whole, unless `kw` says otherwise."""
        options: dict[str, Any] = {
            "follow": False,
            "since": None,
            "tail": None,
            "timestamps": False,
            "stdout": True,
            "stderr": True,
        }
        options.update(kw)
        return await logs.logs(environment_id, **options)

    async def _text(self, logs: LogReader, environment_id: str, **kw: Any) -> bytes:
        return b"".join([c async for c in await self._stream(logs, environment_id, **kw)])

    async def test_logs_keep_each_stream_apart(
        self, logs: LogReader, shared: ContainerSpec
    ) -> None:
        env = shared.environment_id

        async def both_printed() -> bool:
            return len((await self._text(logs, env)).splitlines()) == 2

        await eventually(both_printed)
        assert await self._text(logs, env, stderr=False) == b"contract-out\n"
        assert await self._text(logs, env, stdout=False) == b"contract-err\n"
        assert sorted((await self._text(logs, env)).splitlines()) == [
            b"contract-err",
            b"contract-out",
        ]
        assert len((await self._text(logs, env, tail=1)).splitlines()) == 1
        stamped = (await self._text(logs, env, stderr=False, timestamps=True)).decode()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z contract-out\n", stamped), stamped

    async def test_following_ends_when_the_workload_stops(
        self, provider: RuntimeProvider, logs: LogReader, envs: Environments
    ) -> None:
        spec = await envs.started(f"echo one; {LOOP}")
        stream = await self._stream(logs, spec.environment_id, follow=True)
        assert await anext(stream) == b"one\n"
        await provider.signal(spec.environment_id, "SIGTERM")
        with anyio.fail_after(60):  # a guard against hanging, not a measurement
            assert [c async for c in stream] == []

    async def test_logs_of_an_unknown_container_raise_before_any_byte(
        self, logs: LogReader
    ) -> None:
        with pytest.raises(NotFound):
            await self._text(logs, unknown_environment())


class MetricsSourceContract(ContractBase):
    """`MetricsSource`: samples of the running workloads of one installation."""

    async def test_a_sample_describes_each_running_workload(
        self, metrics: MetricsSource, shared: ContainerSpec
    ) -> None:
        [first] = await metrics.sample(shared.instance)
        [second] = await metrics.sample(shared.instance)
        assert first.environment_id == second.environment_id == shared.environment_id
        assert first.memory_limit_bytes == shared.memory_mb * MIB
        assert 0 < first.memory_bytes < first.memory_limit_bytes
        assert 1 <= first.pids <= shared.pids_limit
        assert first.started_at is not None and first.started_at <= first.taken_at
        assert second.monotonic > first.monotonic and second.cpu_ns >= first.cpu_ns > 0
        assert min(first.network_rx_bytes, first.block_read_bytes, first.block_write_bytes) >= 0

    async def test_stopped_workloads_and_other_installations_are_not_sampled(
        self, metrics: MetricsSource, envs: Environments
    ) -> None:
        stopped = await envs.created()
        assert await metrics.sample(stopped.instance) == []
        assert await metrics.sample(f"test-contract-{uuid.uuid4().hex[:12]}") == []
