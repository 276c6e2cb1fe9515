"""Issue 20's measurements: what the egress proxy adds to an HTTPS request (a new
connection each: TCP, TLS, one GET) and to a 100 MB download, measured inside an
environment whose policy names the host, beside the same client in an environment
without a policy connecting straight to the same server, in the same run. Both the
pass-through case (the proxy only checks the name and the address) and the
secret-swapping case (it terminates TLS and re-encrypts) are measured.

The server is the test suite's egress lab (a namespace with HTTPS servers under names
only the platform's resolver knows), with a sandbay server of its own that knows
them."""

import json
import tempfile
from pathlib import Path
from typing import Any

from tests.support.egress import egress_lab

from bench.harness import Api, Samples, sandbay_server
from bench.ops import Pair

BUNDLE = "/tmp/bench-ca.pem"
#: Runs inside an environment: `n` HTTPS GETs on new connections (the name resolved
#: once, as a client with a DNS cache would), then one download of `size` bytes; the
#: times in ms and the download's MB/s, as JSON.
_CLIENT = r"""
import json, socket, ssl, sys, time
name, n, size, address = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
address = address or socket.gethostbyname(name)
context = ssl.create_default_context(cafile="BUNDLE")
def get(path, sink=False):
    with socket.create_connection((address, 443)) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            head = f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
            tls.sendall(head.encode())
            total = 0
            while chunk := tls.recv(1 << 18):
                total += len(chunk)
            return total
times = []
for _ in range(n):
    start = time.perf_counter()
    get("/small")
    times.append((time.perf_counter() - start) * 1000)
start = time.perf_counter()
got = get(f"/bytes/{size}")
seconds = time.perf_counter() - start
print(json.dumps({"ms": times, "mb_s": got / seconds / 1e6, "bytes": got}))
""".replace("BUNDLE", BUNDLE)


def _client(api: Api, env_id: str, name: str, n: int, size: int, address: str) -> dict[str, Any]:
    answer = api.http.post(
        f"/v1/environments/{env_id}/exec",
        json={
            "command": ["python3", "-c", _CLIENT, name, str(n), str(size), address],
            "timeout": 600,
        },
        timeout=700,
    )
    answer.raise_for_status()
    result = answer.json()
    assert result["exit_code"] == 0, result
    return dict(json.loads(result["stdout"]))


def _prepare(api: Api, env_id: str, ca: bytes) -> None:
    """The lab's CA beside the environment's own trust store, in one bundle."""
    api.http.put(
        f"/v1/environments/{env_id}/files", params={"path": "/tmp/lab-ca.pem"}, content=ca
    ).raise_for_status()
    command = f"cat /etc/ssl/certs/ca-certificates.crt /tmp/lab-ca.pem > {BUNDLE}"
    answer = api.http.post(f"/v1/environments/{env_id}/exec", json={"command": command})
    answer.raise_for_status()
    assert answer.json()["exit_code"] == 0, answer.text


def egress(n: int, size_mb: int) -> dict[str, Pair]:
    """egress_https_request (p50/p99 ms, new connection each) and egress_download_<size>mb
    (MB/s) through the proxy, pass-through and with a secret swapped, each beside a
    direct connection."""
    size = size_mb * 1024 * 1024
    with (
        tempfile.TemporaryDirectory(prefix="sandbay-bench-egress-") as tmp,
        egress_lab(Path(tmp) / "lab") as lab,
    ):
        extra = {
            "SANDBAY_NETWORK__EGRESS_HOSTS": json.dumps(lab.hosts),
            "SANDBAY_NETWORK__EGRESS_CA_BUNDLE": str(lab.ca_file),
        }
        with sandbay_server(**extra) as server:
            api = Api(server)
            secret = api.http.post(
                "/v1/secrets",
                json={"name": "bench", "value": "bench-value", "hosts": [lab.b.name]},
            )
            secret.raise_for_status()
            envs = {
                "direct": api.create(),
                "proxied": api.create(network_domain_allow_list=[lab.a.name, lab.b.name]),
                "swapping": api.create(
                    network_domain_allow_list=[lab.a.name, lab.b.name],
                    secrets={"BENCH": "bench"},
                ),
            }
            ca = lab.ca_file.read_bytes()
            for env in envs.values():
                api.wait(env["id"], "running")
                _prepare(api, env["id"], ca)
            runs = {
                "direct": _client(api, envs["direct"]["id"], lab.a.name, n, size, lab.a.address),
                "proxied": _client(api, envs["proxied"]["id"], lab.a.name, n, size, ""),
                "swapping": _client(api, envs["swapping"]["id"], lab.b.name, n, size, ""),
            }
    direct = _samples(runs["direct"]["ms"])
    pairs: dict[str, Pair] = {}
    for kind, label in (("proxied", "egress_https"), ("swapping", "egress_https_swap")):
        ours = _samples(runs[kind]["ms"])
        pairs[f"{label}_request"] = {
            "sandbay": ours,
            "baseline": direct,
            "baseline_name": "direct connection",
            "metrics": {
                "p99_ms": ours.pct(99),
                "added_p50_ms": ours.pct(50) - direct.pct(50),
                "added_p99_ms": ours.pct(99) - direct.pct(99),
            },
            "baseline_metrics": {"p99_ms": direct.pct(99)},
        }
        pairs[f"{label}_download_{size_mb}mb"] = {
            "sandbay": _samples([size / (runs[kind]["mb_s"] * 1e6) * 1000]),
            "baseline": _samples([size / (runs["direct"]["mb_s"] * 1e6) * 1000]),
            "baseline_name": "direct connection",
            "metrics": {"mb_s": runs[kind]["mb_s"]},
            "baseline_metrics": {"mb_s": runs["direct"]["mb_s"]},
        }
    return pairs


def _samples(ms: list[float]) -> Samples:
    return Samples(list(ms))
