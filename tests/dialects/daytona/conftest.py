"""Daytona's official SDK, unchanged, sync and async, pointed at the session's live
server (`api_url` = its base URL, its API key). Async tests run their body with
`asyncio.run` and open the async client there (`async with async_config() ...`)."""

from collections.abc import Callable

import pytest
from daytona import Daytona, DaytonaConfig

from tests.support.server import LiveServer


@pytest.fixture
def daytona_config(server: LiveServer) -> DaytonaConfig:
    return DaytonaConfig(api_key=server.key, api_url=server.url)


@pytest.fixture
def daytona(daytona_config: DaytonaConfig) -> Daytona:
    return Daytona(daytona_config)


@pytest.fixture
def async_config(daytona_config: DaytonaConfig) -> Callable[[], DaytonaConfig]:
    """For `AsyncDaytona(async_config())` inside the test's own event loop."""
    return lambda: daytona_config
