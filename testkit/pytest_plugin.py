"""What every test tree shares (loaded with `-p testkit.pytest_plugin`, see pyproject.toml).

Tests marked `redis` or `postgres` run only when the run is on that service (`make test` runs
the suite a second time with TEST_DATABASE_URL / TEST_REDIS_URL); with REQUIRE_SERVICES=1
their skip becomes a failure, so CI cannot pass without them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest


def unavailable(reason: str) -> None:
    """Skip for want of something the run lacks, or fail when REQUIRE_SERVICES=1."""
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and REQUIRE_SERVICES=1")
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    from django.conf import settings
    from django.db import connection

    need = []
    if item.get_closest_marker("redis") and not settings.REDIS_URL:
        need.append("Redis (TEST_REDIS_URL)")
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        need.append("PostgreSQL (TEST_DATABASE_URL)")
    if need:
        unavailable("needs " + " and ".join(need))


@pytest.fixture(scope="module", autouse=True)
async def _close_thread_connections() -> AsyncIterator[None]:
    """After each module, close the database connection of asgiref's sync thread, so that the
    test database can be dropped at the end of the run."""
    yield
    from asgiref.sync import sync_to_async
    from django.db import connections

    await sync_to_async(connections.close_all)()
