"""Egress by name on the real engine, with real HTTPS: an environment whose policy
names hosts reaches those and nothing else — not another name, not an address the
platform did not give for the name it sends (SNI spoofing, direct IP) — and root
inside cannot change that. A secret bound to one host arrives there with its real
value, while the environment (its env, processes, files and memory) and sandbay (its
log, events and database) hold only the placeholder.

The servers live in a network namespace this module makes (`tests/support/egress`),
under names only the platform's resolver knows."""

import hashlib
import json
import secrets
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.egress import EgressLab, egress_lab
from tests.support.factories import delete, events, running_env
from tests.support.inside import run, sh
from tests.support.inside_app import start_app
from tests.support.polling import eventually
from tests.support.server import LiveServer, new_server, remove_engine_objects

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]
VALUE = "sk-real-" + secrets.token_hex(16)
LAB_CA = "/tmp/lab-ca.pem"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EgressLab]:
    with egress_lab(tmp_path_factory.mktemp("egress-lab")) as lab:
        yield lab


@pytest.fixture(scope="module")
def live(lab: EgressLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = new_server(
        tmp_path_factory.mktemp("egress-servers"),
        extra_env={
            "SANDBAY_NETWORK__EGRESS_HOSTS": json.dumps(lab.hosts),
            "SANDBAY_NETWORK__EGRESS_CA_BUNDLE": str(lab.ca_file),
        },
    ).start()
    try:
        yield server
    finally:
        server.stop()
        remove_engine_objects(server.instance)


@pytest.fixture(scope="module")
def api(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client() as client:
        yield client


@pytest.fixture(scope="module")
def env(api: httpx.Client, lab: EgressLab) -> dict[str, Any]:
    response = api.post(
        "/v1/secrets", json={"name": "lab_token", "value": VALUE, "hosts": [lab.a.name]}
    )
    assert response.status_code == 201, response.text
    env = running_env(
        api,
        network_domain_allow_list=[lab.a.name, lab.b.name],
        secrets={"LAB_TOKEN": "lab_token"},
    )
    # B is passed through untouched: its certificate is from the lab's CA, which
    # the environment is given as a file (A's is the environment's own, via its trust store).
    upload = api.put(
        f"/v1/environments/{env['id']}/files",
        params={"path": LAB_CA},
        content=lab.ca_file.read_bytes(),
    )
    assert upload.status_code in (200, 201, 204), upload.text
    return env


def curl(api: httpx.Client, env: str, *args: str) -> dict[str, Any]:
    command = "curl -sS -m 5 " + " ".join(shlex.quote(a) for a in args)
    return run(api, env, ["sh", "-c", command])


def echoed(result: dict[str, Any]) -> dict[str, Any]:
    assert result["exit_code"] == 0, result
    answer = dict(json.loads(result["stdout"]))
    answer["headers"] = {k.lower(): v for k, v in answer["headers"].items()}
    return answer


def test_allowed_names_answer_and_nothing_else_gets_out(
    api: httpx.Client, env: dict[str, Any], lab: EgressLab
) -> None:
    assert echoed(curl(api, env["id"], f"https://{lab.a.name}/hello"))["server"] == lab.a.name
    got = echoed(curl(api, env["id"], "--cacert", LAB_CA, f"https://{lab.b.name}/"))
    assert got["server"] == lab.b.name
    assert echoed(curl(api, env["id"], f"http://{lab.b.name}/plain"))["path"] == "/plain"

    # A name not on the list: no address, and no connection by name either.
    lookup = run(api, env["id"], ["getent", "hosts", lab.stray.name])
    assert lookup["exit_code"] != 0 and not lookup["stdout"].strip()
    assert curl(api, env["id"], f"https://{lab.stray.name}/")["exit_code"] != 0
    # The address of a server no name leads to, directly, with or without a name.
    assert curl(api, env["id"], "-k", f"https://{lab.stray.address}/")["exit_code"] != 0
    direct = curl(api, env["id"], f"http://{lab.stray.address}/")
    assert (
        direct["exit_code"] != 0 or "refused by the environment's egress policy" in direct["stdout"]
    )
    # An allowed name sent (SNI and Host) to another server's address.
    spoof = ["--resolve", f"{lab.a.name}:443:{lab.stray.address}", "-k"]
    assert curl(api, env["id"], *spoof, f"https://{lab.a.name}/")["exit_code"] != 0
    spoof80 = ["--resolve", f"{lab.a.name}:80:{lab.stray.address}"]
    plain = curl(api, env["id"], *spoof80, f"http://{lab.a.name}/")
    assert "refused by the environment's egress policy" in plain["stdout"]

    # One plain HTTP connection to an allowed name, then a request naming another
    # host on it (virtual hosting): refused request by request.
    keep_alive = (
        "import http.client as h; c = h.HTTPConnection('" + lab.a.name + "'); "
        "c.request('GET', '/1'); r = c.getresponse(); r.read(); "
        "c.request('GET', '/2', headers={'Host': '" + lab.stray.name + "'}); "
        "print(r.status, c.getresponse().status)"
    )
    assert sh(api, env["id"], f'python3 -c "{keep_alive}"').split() == ["200", "421"]

    def refusals() -> list[dict[str, Any]]:
        found = [e for e in events(api, env["id"]) if e["type"] == "environment.egress_refused"]
        reasons = {e["reason"] for e in found}
        assert "name not allowed" in reasons
        assert "address not resolved for that name by the platform" in reasons
        return found

    found = eventually(refusals, timeout=10)
    spoofed = [e for e in found if e["data"]["name"] == lab.a.name]
    assert spoofed and spoofed[0]["data"]["address"] == lab.stray.address
    assert spoofed[0]["data"]["port"] in (80, 443)


def test_root_inside_cannot_change_or_get_around_it(
    api: httpx.Client, env: dict[str, Any], lab: EgressLab
) -> None:
    assert sh(api, env["id"], "id -u").strip() == "0"
    # No CAP_NET_ADMIN: neither the rules, the routes nor the interfaces change.
    for command in (
        "ip link set eth0 down",
        "ip route replace default via 172.17.0.1",
        "ip addr add 10.9.9.9/32 dev eth0",
    ):
        assert run(api, env["id"], ["sh", "-c", command])["exit_code"] != 0, command
    # Another resolver named in resolv.conf still gets the platform's answers.
    sh(api, env["id"], f"echo 'nameserver {lab.stray.address}' > /etc/resolv.conf")
    assert run(api, env["id"], ["getent", "hosts", lab.stray.name])["exit_code"] != 0
    assert sh(api, env["id"], f"getent hosts {lab.a.name}").split()[0] == lab.a.address
    # UDP anywhere but DNS, and a connection straight to the proxy's own port.
    udp = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        f"s.sendto(b'x', ('{lab.stray.address}', 9999))"
    )
    assert run(api, env["id"], ["python3", "-c", udp])["exit_code"] != 0
    listening = sh(api, env["id"], "cat /proc/net/tcp | awk 'NR>1 && $4==\"0A\" {print $2}'")
    loopback = [p for a, p in (x.split(":") for x in listening.split()) if a == "0100007F"]
    assert loopback  # 127.0.0.1: the proxy's port among them
    for port in loopback:
        probe = curl(
            api,
            env["id"],
            "-k",
            "--resolve",
            f"{lab.a.name}:{int(port, 16)}:127.0.0.1",
            f"https://{lab.a.name}:{int(port, 16)}/",
        )
        assert probe["exit_code"] != 0


def test_a_live_change_takes_effect_at_once(
    api: httpx.Client, env: dict[str, Any], lab: EgressLab
) -> None:
    try:
        response = api.patch(
            f"/v1/environments/{env['id']}", json={"network_domain_allow_list": [lab.b.name]}
        )
        assert response.status_code == 200, response.text
        # The PATCH answers once the policy is in force: no wait, no restart.
        assert curl(api, env["id"], f"https://{lab.a.name}/")["exit_code"] != 0
        assert echoed(curl(api, env["id"], f"http://{lab.b.name}/"))["server"] == lab.b.name
    finally:
        response = api.patch(
            f"/v1/environments/{env['id']}",
            json={"network_domain_allow_list": [lab.a.name, lab.b.name]},
        )
        assert response.status_code == 200, response.text
    assert echoed(curl(api, env["id"], f"https://{lab.a.name}/"))["server"] == lab.a.name


def test_a_secret_reaches_its_host_only_and_is_nowhere_else(
    api: httpx.Client, env: dict[str, Any], lab: EgressLab, live: LiveServer
) -> None:
    placeholder = sh(api, env["id"], 'printf %s "$LAB_TOKEN"')
    assert placeholder and VALUE not in placeholder
    header = ["-H", f"Authorization: Bearer {placeholder}"]
    got = echoed(curl(api, env["id"], *header, f"https://{lab.a.name}/v1/call?key={placeholder}"))
    # A arrived with the value (its hashes say so), and its echo of it came back to
    # the environment with the placeholder in the value's place.
    assert got["sha256"]["authorization"] == _sha256(f"Bearer {VALUE}")
    assert got["sha256"]["path"] == _sha256(f"/v1/call?key={VALUE}")
    assert got["headers"]["authorization"] == f"Bearer {placeholder}"
    assert got["path"] == f"/v1/call?key={placeholder}"
    # Clients with a bundle of their own are pointed at the one holding the CA.
    assert (
        sh(api, env["id"], "printf %s $REQUESTS_CA_BUNDLE") == "/etc/ssl/certs/ca-certificates.crt"
    )
    python = (
        "import urllib.request as u; r = u.Request('https://" + lab.a.name + "/py', "
        "headers={'Authorization': 'Bearer "
        + placeholder
        + "'}); print(u.urlopen(r).read().decode())"
    )
    by_python = echoed(run(api, env["id"], ["python3", "-c", python]))
    assert by_python["sha256"]["authorization"] == _sha256(f"Bearer {VALUE}")
    # A small body is swapped too (a key in JSON); a larger one streams unchanged.
    body = f'{{"api_key": "{placeholder}"}}'
    posted = echoed(curl(api, env["id"], "--data-binary", body, f"https://{lab.a.name}/json"))
    assert posted["sha256"]["body"] == _sha256(body.replace(placeholder, VALUE))
    assert posted["body"] == body  # and the echo of it came back as the placeholder
    plain = echoed(curl(api, env["id"], *header, f"http://{lab.a.name}/"))
    assert plain["sha256"]["authorization"] == _sha256(f"Bearer {VALUE}")
    # The same placeholder to a host the secret is not bound to arrives unchanged.
    other = echoed(curl(api, env["id"], *header, "--cacert", LAB_CA, f"https://{lab.b.name}/"))
    assert other["sha256"]["authorization"] == _sha256(f"Bearer {placeholder}")

    # The environment: its env, every process's environment, every file, every
    # process's memory.
    # The needle goes in as hex: the search's own request holds no copy of it.
    search = _SEARCH.replace("NEEDLE_HEX", VALUE.encode().hex())
    result = run(api, env["id"], ["python3", "-c", search], timeout=120)
    assert result["exit_code"] == 0, result
    report = json.loads(result["stdout"])
    assert report["found"] == [], report
    assert report["files"] > 1000, report
    # Each process's environment and memory, read from the host (inside, the agent is
    # not dumpable and Yama lets root read only its own descendants).
    scanned = _memory_holding(f"sandbay-{env['id']}", VALUE.encode())
    assert scanned["found"] == [] and scanned["processes"] >= 1, scanned
    # sandbay: its log, its events, its database file.
    assert VALUE not in live.log_path.read_text(errors="replace")
    everything = api.get("/v1/events", params={"limit": 1000})
    assert everything.status_code == 200 and VALUE not in everything.text
    assert VALUE not in api.get(f"/v1/environments/{env['id']}").text
    for path in Path(live.data_dir).rglob("*"):
        if path.is_file():
            assert VALUE.encode() not in path.read_bytes(), path


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _memory_holding(container: str, needle: bytes) -> dict[str, Any]:
    """The environment and every readable mapping of every process of the container,
    searched."""
    top = subprocess.run(
        ["docker", "top", container, "-eo", "pid"], capture_output=True, text=True, check=True
    )
    found, processes = [], 0
    for pid in top.stdout.split()[1:]:
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                if needle in environ.read():
                    found.append(f"{pid}: environ")
            with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
                processes += 1
                for line in maps:
                    fields = line.split()
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    if "r" not in fields[1] or end - start > 1 << 30:
                        continue
                    try:
                        mem.seek(start)
                        if needle in mem.read(end - start):
                            found.append(f"{pid}: {line.strip()}")
                    except (OSError, ValueError, OverflowError):
                        pass
        except OSError:
            pass
    return {"found": found, "processes": processes}


#: Runs inside the environment as root: looks for the needle in every file.
_SEARCH = r"""
import json, os, re
needle = bytes.fromhex("NEEDLE_HEX")
found, files = [], 0
for root, dirs, names in os.walk("/"):
    if root == "/" :
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    for name in names:
        path = os.path.join(root, name)
        try:
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                files += 1
                if needle in f.read():
                    found.append(path)
        except OSError:
            pass
print(json.dumps({"found": found, "files": files}))
"""


def test_the_agent_channel_and_previews_are_not_cut(
    api: httpx.Client, env: dict[str, Any], live: LiveServer
) -> None:
    # Exec, files and previews all reach the environment through its agent's port.
    start_app(api, env["id"], 8000)
    link = api.get(f"/v1/environments/{env['id']}/preview/8000")
    assert link.status_code == 200, link.text
    with live.client(key="") as anon:
        page = anon.get(
            f"/preview/{env['id']}/8000/hello",
            headers={"X-Sandbay-Preview-Token": link.json()["token"]},
        )
    assert page.status_code == 200 and page.text == "hello from inside\n"


def test_block_all_wins_and_lifting_it_restores_the_names(
    api: httpx.Client, env: dict[str, Any], lab: EgressLab
) -> None:
    try:
        response = api.patch(f"/v1/environments/{env['id']}", json={"network_block_all": True})
        assert response.status_code == 200, response.text
        assert curl(api, env["id"], f"https://{lab.a.name}/")["exit_code"] != 0
        assert run(api, env["id"], ["getent", "hosts", lab.a.name])["exit_code"] != 0
    finally:
        response = api.patch(f"/v1/environments/{env['id']}", json={"network_block_all": False})
        assert response.status_code == 200, response.text
    assert echoed(curl(api, env["id"], f"https://{lab.a.name}/"))["server"] == lab.a.name


def test_the_same_holds_under_gvisor(api: httpx.Client, lab: EgressLab) -> None:
    env = running_env(
        api,
        runtime="runsc",
        network_domain_allow_list=[lab.a.name],
        secrets={"LAB_TOKEN": "lab_token"},
    )
    try:
        placeholder = sh(api, env["id"], 'printf %s "$LAB_TOKEN"')
        header = ["-H", f"Authorization: Bearer {placeholder}"]
        got = echoed(curl(api, env["id"], *header, f"https://{lab.a.name}/"))
        assert got["sha256"]["authorization"] == _sha256(f"Bearer {VALUE}")
        assert curl(api, env["id"], f"https://{lab.b.name}/")["exit_code"] != 0
        spoof = ["--resolve", f"{lab.a.name}:443:{lab.stray.address}", "-k"]
        assert curl(api, env["id"], *spoof, f"https://{lab.a.name}/")["exit_code"] != 0
        assert curl(api, env["id"], "-k", f"https://{lab.stray.address}/")["exit_code"] != 0
    finally:
        delete(api, env["id"])


@pytest.mark.parametrize("by", ["names", "cidrs"])
def test_the_workload_gets_nothing_out_before_its_policy_holds(
    api: httpx.Client, lab: EgressLab, by: str
) -> None:
    """The command connects the moment it starts: the agent held it until the policy
    was in force (before the hold, its first ~100 ms got through), and an allowed
    name answers from the first request on."""
    allowed = f"http://{lab.a.name}/" if by == "names" else f"http://{lab.a.address}/"
    probe = (
        f"curl -s -m 5 -o /dev/null -w '%{{http_code}}' {allowed} > /tmp/allowed.log; "
        "for i in 1 2 3 4 5; do curl -s -m 1 -o /dev/null -w '%{http_code} ' "
        f"http://{lab.stray.address}/ >> /tmp/early.log; done; sleep infinity"
    )
    policy: dict[str, Any] = (
        {"network_domain_allow_list": [lab.a.name]}
        if by == "names"
        else {"network_allow_list": [f"{lab.a.address}/32"]}
    )
    env = running_env(api, command=["sh", "-c", probe], **policy)
    try:
        codes = eventually(
            lambda: _five(sh(api, env["id"], "cat /tmp/early.log 2>/dev/null || true")),
            what="five tries",
            timeout=30,
        )
        assert "200" not in codes, codes
        assert sh(api, env["id"], "cat /tmp/allowed.log") == "200"
    finally:
        delete(api, env["id"])


def _five(log: str) -> list[str] | None:
    codes = log.split()
    return codes if len(codes) == 5 else None
