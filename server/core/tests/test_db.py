"""Database calls from async code (core.db): the health check a busy connection skips."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import DatabaseError, close_old_connections, connection, connections

from core import db

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the health checks (SELECT 1 on PostgreSQL) of the default connection, made
    persistent and health-checked as in production (the test settings close it after use)."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", True)
    connection.close()
    # SQLite's in-memory test database is never closed, so it keeps the flag it opened with.
    monkeypatch.setattr(connections["default"], "health_check_enabled", True)
    calls: list[int] = []
    wrapper = type(connections["default"])
    original = wrapper.is_usable

    def counted(self):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(self)

    monkeypatch.setattr(wrapper, "is_usable", counted)
    yield calls
    connection.close()


def _as_channels_calls_it(fn):  # type: ignore[no-untyped-def]
    """What channels' database_sync_to_async does around each call, in this thread."""
    close_old_connections()
    try:
        return db._skip_recent_health_check(fn)()
    finally:
        close_old_connections()


def _query() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _failing_query() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")


def test_a_connection_that_answered_moments_ago_is_not_pinged(pings):
    _as_channels_calls_it(_query)
    pings.clear()
    for _ in range(5):
        _as_channels_calls_it(_query)
    assert pings == []


def test_a_connection_idle_for_longer_is_pinged(monkeypatch, pings):
    _as_channels_calls_it(_query)
    monkeypatch.setattr(db, "HEALTH_CHECK_AFTER_IDLE_SECONDS", 0.0)
    pings.clear()
    _as_channels_calls_it(_query)
    _as_channels_calls_it(_query)
    assert len(pings) == 2


def test_a_connection_that_raised_a_database_error_is_checked_before_its_next_use(pings):
    _as_channels_calls_it(_query)
    pings.clear()
    with pytest.raises(DatabaseError):
        _as_channels_calls_it(_failing_query)
    _as_channels_calls_it(_query)
    assert len(pings) == 1
