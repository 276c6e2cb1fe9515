"""The workload's logs: tail, since, timestamps, follow; readable after a stop."""

import time

import httpx

from tests.support.factories import delete, running_env, stop, wait_state
from tests.support.inside import sh

WORKLOAD = (
    "echo one; echo two; echo err >&2; while [ ! -e /tmp/more ]; do sleep 0.05; done; "
    "echo three; exec sleep infinity"
)


def test_logs_tail_since_follow_and_after_stop(api: httpx.Client) -> None:
    env = running_env(api, name="logs-all", command=WORKLOAD)
    url = f"/v1/environments/{env['id']}/logs"
    for _ in range(100):  # the workload starts printing just after `running`
        if len(api.get(url).text.splitlines()) == 3:
            break
        time.sleep(0.05)
    # stdout and stderr are separate pipes: their relative order is not kept.
    assert sorted(api.get(url).text.splitlines()) == ["err", "one", "two"]
    stdout = {"stream": "stdout"}
    assert api.get(url, params=stdout).text == "one\ntwo\n"
    assert api.get(url, params={"stream": "stderr"}).text == "err\n"
    last = api.get(url, params={"tail": 1}).text  # the engine tails both streams together
    assert last in ("two\n", "err\n")
    assert api.get(url, params={"since": time.time() + 3600}).text == ""
    stamped = api.get(url, params={**stdout, "timestamps": True}).text.splitlines()
    assert stamped[0].endswith(" one") and stamped[0][:4].isdigit()

    with api.stream("GET", url, params={**stdout, "follow": True}) as response:
        lines = response.iter_lines()
        assert next(lines) == "one" and next(lines) == "two"
        sh(api, env["id"], "touch /tmp/more")  # the workload goes on only now
        assert next(lines) == "three"

    stop(api, env["id"], force=True)
    wait_state(api, env["id"], "stopped")
    assert api.get(url, params=stdout).text == "one\ntwo\nthree\n"
    delete(api, env["id"])
