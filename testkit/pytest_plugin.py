"""What every test tree shares (loaded with `-p testkit.pytest_plugin`, see pyproject.toml).

Tests marked `redis` or `postgres` run only when the run is on that service (`make test` runs
the suite a second time with TEST_DATABASE_URL / TEST_REDIS_URL); with REQUIRE_SERVICES=1
their skip becomes a failure, so CI cannot pass without them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

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


@pytest.fixture(scope="session", autouse=True)
def _end_leftover_sessions(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Before pytest-django drops the test database (this fixture ends first, as it needs the
    database set up), end the PostgreSQL sessions still open on it: connections that threads
    of this process (the socket handlers' database pool) kept past their last test. Left open,
    they make the drop fail and leave the database behind."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
