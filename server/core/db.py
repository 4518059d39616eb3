"""Running ORM work from async code."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar, cast

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection

P = ParamSpec("P")
R = TypeVar("R")

_executor: ThreadPoolExecutor | None = None


def _db_executor() -> ThreadPoolExecutor:
    # Its own pool, sized by DB_THREADS: the event loop's default one has cores + 4 threads,
    # and a thread waiting on a database round trip holds its slot, so on a small machine a
    # few slow queries queued every socket's work behind them.
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.DB_THREADS, thread_name_prefix="db")
    return _executor


# A connection that answered a query this recently, with no error since, is not pinged again
# before its next use (see _skip_recent_health_check).
HEALTH_CHECK_AFTER_IDLE_SECONDS = 5.0


def _skip_recent_health_check(fn: Callable[P, R]) -> Callable[P, R]:
    """With CONN_HEALTH_CHECKS, Django pings a persistent connection (SELECT 1) before the
    first query of every request, and channels treats each database call from async code as a
    request: a room message paid two extra round trips. A connection that answered within the
    last few seconds is taken as alive; one idle for longer is still checked, and one that
    raised a database error is checked and replaced by close_old_connections as before. So a
    connection that PostgreSQL dropped while it was busy fails its next query once (503) and
    is then replaced, as it would without the check."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        used_at: float | None = getattr(connection, "used_at", None)
        now = time.monotonic()
        if (
            connection.connection is not None
            and used_at is not None
            and now - used_at < HEALTH_CHECK_AFTER_IDLE_SECONDS
        ):
            connection.health_check_done = True  # type: ignore[attr-defined]
        try:
            return fn(*args, **kwargs)
        finally:
            if connection.connection is not None and not connection.errors_occurred:
                connection.used_at = time.monotonic()  # type: ignore[attr-defined]

    return run


def db_async(fn: Callable[P, R]) -> Callable[P, Any]:
    """Wrap a sync function touching the database so that async code can await it.

    On PostgreSQL the work runs in a pool of DB_THREADS threads (each keeps its own
    connection); on SQLite, which has a single writer, it stays on Django's one sync thread.
    See settings.DB_THREAD_SENSITIVE.
    """
    call = _skip_recent_health_check(fn)
    if settings.DB_THREAD_SENSITIVE:
        wrapped = database_sync_to_async(call, thread_sensitive=True)
    else:
        wrapped = database_sync_to_async(call, thread_sensitive=False, executor=_db_executor())
    return cast(Callable[P, Any], wrapped)
