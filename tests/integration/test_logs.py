"""The workload's logs: tail, since, timestamps, follow; readable after a stop."""

import time

import httpx

from tests.support.factories import delete, running_env, stop, wait_state
from tests.support.inside import sh

WORKLOAD = (
    "echo one; echo two >&2; while [ ! -e /tmp/more ]; do sleep 0.05; done; "
    "echo three; exec sleep infinity"
)


def test_logs_tail_since_follow_and_after_stop(api: httpx.Client) -> None:
    env = running_env(api, name="logs-all", command=WORKLOAD)
    url = f"/v1/environments/{env['id']}/logs"
    for _ in range(100):  # the workload starts printing just after `running`
        if api.get(url).text == "one\ntwo\n":
            break
        time.sleep(0.05)
    assert api.get(url).text == "one\ntwo\n"
    assert api.get(url, params={"tail": 1}).text == "two\n"
    assert api.get(url, params={"stream": "stdout"}).text == "one\n"
    assert api.get(url, params={"since": time.time() + 3600}).text == ""
    stamped = api.get(url, params={"timestamps": True}).text.splitlines()
    assert stamped[0].endswith(" one") and stamped[0][:4].isdigit()

    with api.stream("GET", url, params={"follow": True}) as response:
        lines = response.iter_lines()
        assert next(lines) == "one" and next(lines) == "two"
        sh(api, env["id"], "touch /tmp/more")  # the workload goes on only now
        assert next(lines) == "three"

    stop(api, env["id"], force=True)
    wait_state(api, env["id"], "stopped")
    assert api.get(url).text.startswith("one\ntwo\nthree\n")
    delete(api, env["id"])
