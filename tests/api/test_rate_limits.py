"""Rate limits per key and per organization, on a server configured with tiny ones."""

from collections.abc import Callable

from tests.support.factories import assert_envelope, scoped_key
from tests.support.server import LiveServer


def test_a_key_past_its_burst_gets_429_with_retry_after(
    make_server: Callable[..., LiveServer], database_url: str | None
) -> None:
    live = make_server(
        postgres=database_url is not None,
        extra_env={"SANDBAY_LIMITS__KEY_RATE": "0.2", "SANDBAY_LIMITS__KEY_BURST": "5"},
    ).start()
    with live.client() as api:
        other = scoped_key(api, "limits-other", "environments:read")
        answers = [api.get("/v1/environments") for _ in range(8)]
        codes = [a.status_code for a in answers]
        assert codes[:4] == [200] * 4 and codes[-1] == 429, codes  # the key made one more
        assert_envelope(answers[-1], 429, "rate_limit_error")
        assert int(answers[-1].headers["retry-after"]) >= 1
    # Another key of the organization has its own bucket.
    with live.client(other) as scoped:
        assert scoped.get("/v1/environments").status_code == 200


def test_an_organization_past_its_burst_gets_429_on_every_key(
    make_server: Callable[..., LiveServer], database_url: str | None
) -> None:
    live = make_server(
        postgres=database_url is not None,
        extra_env={"SANDBAY_LIMITS__ORG_RATE": "0.2", "SANDBAY_LIMITS__ORG_BURST": "6"},
    ).start()
    with live.client() as api:
        other = scoped_key(api, "limits-org", "environments:read")
        codes = [api.get("/v1/environments").status_code for _ in range(8)]
        assert 429 in codes, codes
    with live.client(other) as scoped:
        refused = scoped.get("/v1/environments")
        assert_envelope(refused, 429, "rate_limit_error")
        assert "retry-after" in refused.headers
