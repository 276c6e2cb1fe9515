"""Capability services as the platform builds them, for the in-process tests: on
the tests' runner, with the base image as the default."""

from sandbay.domain.pools import WarmPoolSpec
from sandbay.runtime.provider import RuntimeProvider
from sandbay.services.environments.lifecycle import Lifecycle
from sandbay.services.environments.records import Placement
from sandbay.services.environments.service import EnvironmentsService
from tests.support.records import RUNNER

IMAGE = "sandbay-base:latest"


def environments_service(
    lifecycle: Lifecycle, provider: RuntimeProvider, *, warm_pools: bool = False
) -> EnvironmentsService:
    """Creates checked against `provider` (host size, image); with `warm_pools`, a
    create first tries to claim a ready member of a warm pool."""
    pools = (WarmPoolSpec(size=1),) if warm_pools else ()
    placement = Placement(runner_id=RUNNER, default_image=IMAGE, warm_pools=pools)
    return EnvironmentsService(lifecycle=lifecycle, provider=provider, placement=placement)
