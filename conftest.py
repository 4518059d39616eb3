"""Fixtures and hooks shared by every test tree (server/, tests/)."""

from __future__ import annotations

import os

import pytest


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked `redis` or `postgres` run only when the run is on that service (`make test`
    runs the suite a second time with TEST_DATABASE_URL / TEST_REDIS_URL); with
    REQUIRE_SERVICES=1 their skip becomes a failure, so CI cannot pass without them."""
    from django.conf import settings
    from django.db import connection

    need = []
    if item.get_closest_marker("redis") and not settings.REDIS_URL:
        need.append("Redis (TEST_REDIS_URL)")
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        need.append("PostgreSQL (TEST_DATABASE_URL)")
    if need:
        reason = "needs " + " and ".join(need)
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason}, and REQUIRE_SERVICES=1")
        pytest.skip(reason)
