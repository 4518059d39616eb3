"""Running ORM work from async code."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, cast

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection

from core import events

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


@dataclass
class _Outcome(Generic[R]):
    result: R | None
    error: BaseException | None
    events: list[dict[str, Any]]


def _collecting(fn: Callable[P, R]) -> Callable[P, _Outcome[R]]:
    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> _Outcome[R]:
        with events.collected() as batch:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # re-raised on the loop, after the events are out
                return _Outcome(None, exc, batch)
        return _Outcome(result, None, batch)

    return run


_orphans: set[asyncio.Task[None]] = set()


def _publish_orphaned(call: asyncio.Future[_Outcome[Any]]) -> None:
    if call.cancelled() or call.exception() is not None:
        return
    events_ = call.result().events
    if events_:
        task = asyncio.ensure_future(events.apublish_all(events_))
        _orphans.add(task)
        task.add_done_callback(_orphans.discard)


def db_async(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Wrap a sync function touching the database so that async code can await it.

    On PostgreSQL the work runs in a pool of DB_THREADS threads (each keeps its own
    connection); on SQLite, which has a single writer, it stays on Django's one sync thread.
    See settings.DB_THREAD_SENSITIVE. The events its services commit are published from the
    event loop once it returns (or raises), in the order they were committed (core.events).
    """
    call = _collecting(_skip_recent_health_check(fn))
    if settings.DB_THREAD_SENSITIVE:
        threaded = database_sync_to_async(call, thread_sensitive=True)
    else:
        threaded = database_sync_to_async(call, thread_sensitive=False, executor=_db_executor())

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        call = asyncio.ensure_future(threaded(*args, **kwargs))
        try:
            outcome: _Outcome[R] = await asyncio.shield(call)
        except asyncio.CancelledError:
            # The caller left (its socket closed) while the thread worked: what the call
            # committed is announced all the same.
            call.add_done_callback(_publish_orphaned)
            raise
        if outcome.events:
            await events.apublish_all(outcome.events)
        if outcome.error is not None:
            raise outcome.error
        return cast(R, outcome.result)

    return run


def fetch_one(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    """Run one statement of a hot path and return its first row.

    On PostgreSQL through a psycopg cursor that sends the parameters apart from the SQL:
    Django's cursors quote each value into the SQL text in Python, a visible share of the room
    chat write path's CPU (BENCHMARKS.md). Errors are Django's, as from its own cursors. Only
    the few statements every message pays use this; server-side binding for every query
    (OPTIONS server_side_binding) measured no faster.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row: tuple[Any, ...] | None = cursor.fetchone()
            return row
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()
