"""Schemathesis over the whole `/openapi.json` (native API and every dialect) against
the live server: no answer is a 5xx, and every answer's status, content type and
body are what the document declares. Stateful testing follows the links schemathesis
infers (ids from creates into the routes that take them).

The suite runs 5 examples per operation in the examples, fuzzing and stateful
phases (about 30 s a database); `make fuzz` runs 50 (SANDBAY_FUZZ_EXAMPLES) and adds
the coverage phase (boundary values, every negative case the schema defines,
duplicated query parameters) on both databases (SANDBAY_FUZZ_PHASES).

The fuzzer works in an organization of its own, with quotas that bound how many
containers it can start, so it neither touches other tests' objects nor starts
containers at scale; the server fixture removes what it made."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.factories import delete, running_env
from tests.support.server import ADMIN_KEY, LiveServer

EXAMPLES = int(os.environ.get("SANDBAY_FUZZ_EXAMPLES", "5"))
PHASES = os.environ.get("SANDBAY_FUZZ_PHASES", "examples,fuzzing,stateful")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
#: Operations left out: those that start containers in numbers (warm pools keep
#: several running, snapshots build images) and the revocation of keys (the fuzzer
#: would revoke its own). Every other operation is fuzzed.
EXCLUDED = (
    "create_warm_pool_warm_pools_post",
    "update_warm_pool_warm_pools__id__patch",
    "create_snapshot_snapshots_post",
    "revoke_key_v1_keys__key_id__delete",
)
BIN = Path(sys.executable).parent


def _fuzz_key(server: LiveServer) -> str:
    """A key of a new organization that may run at most two small environments."""
    with server.client(key=ADMIN_KEY) as admin:
        made = admin.post("/v1/orgs", json={"name": f"fuzz-{uuid.uuid4().hex[:8]}"})
        assert made.status_code == 201, made.text
        org = made.json()
        quotas = {
            "max_running_environments": 2,
            "max_running_cpu": 2,
            "max_running_memory_mb": 2048,
        }
        set_quotas = admin.put(f"/v1/orgs/{org['id']}/quotas", json=quotas)
        assert set_quotas.status_code == 200, set_quotas.text
    return str(org["api_key"]["key"])


#: Beyond the CLI's options: the coverage phase also repeats query parameters, and a
#: log follows no workload (`follow=true` streams until the workload stops, by design).
CONFIG = """
[phases.coverage]
generate-duplicate-query-parameters = true

[[operations]]
include-path = "/v1/environments/{env}/logs"
parameters = { "query.follow" = false }
"""
#: The routes that reach inside an environment (exec, files, processes, logs, metrics;
#: Daytona's toolbox), fuzzed a second time with a running environment as their id.
INSIDE = r"^/(v1/environments/\{env\}/(exec|files|processes|logs|metrics)|toolbox/)"


def _command(server: LiveServer, key: str, tmp_path: Path, config: str = "") -> list[str]:
    (tmp_path / "schemathesis.toml").write_text(CONFIG + config)
    command = [
        str(BIN / "schemathesis"),
        "--config-file",
        str(tmp_path / "schemathesis.toml"),
        "run",
        f"{server.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        PHASES,
        "--max-examples",
        str(EXAMPLES),
        # One worker: Hypothesis describes strategies racily across threads (its "AST
        # constructor recursion depth mismatch" errors), a fault of the fuzzer.
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--suppress-health-check",
        "all",
        "--no-shrink",
        "--continue-on-failure",
        "--report",
        "junit",
        "--report-junit-path",
        str(tmp_path / "fuzz.xml"),
    ]
    for operation_id in EXCLUDED:
        command += ["--exclude-operation-id", operation_id]
    return command


def _run(command: list[str], tmp_path: Path) -> None:
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=3500,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
        check=False,
    )
    log = tmp_path / "fuzz.log"
    log.write_text(run.stdout + run.stderr)
    print(run.stdout[run.stdout.rfind("SUMMARY") :])
    found = [i for i in (run.stdout.find(" ERRORS "), run.stdout.find(" FAILURES ")) if i >= 0]
    failures = run.stdout[min(found, default=0) : run.stdout.rfind("SUMMARY")]
    assert run.returncode == 0, f"{failures[:60_000]}\nfull log: {log}\n{run.stderr[-2000:]}"


@pytest.mark.timeout(3600)
def test_fuzzing_finds_no_server_error_and_no_schema_violation(
    server: LiveServer, tmp_path: Path
) -> None:
    _run(_command(server, _fuzz_key(server), tmp_path), tmp_path)


@pytest.mark.timeout(3600)
def test_fuzzing_inside_a_running_environment(server: LiveServer, tmp_path: Path) -> None:
    """Most ids the fuzzer makes up name nothing (404): here the routes that reach
    inside an environment get a running one, so exec, files, processes and the
    toolbox take generated input for real."""
    key = _fuzz_key(server)
    with server.client(key=key) as client:
        env = running_env(client, name="fuzz-inside", memory_mb=256)
        pinned = f"""
[parameters]
"path.env" = "{env["id"]}"
"path.sandboxId" = "{env["id"]}"
"""
        command = _command(server, key, tmp_path, pinned)
        _run([*command, "--include-path-regex", INSIDE], tmp_path)
        delete(client, env["id"])
