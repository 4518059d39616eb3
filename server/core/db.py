"""Running ORM work from async code."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar, cast

from channels.db import database_sync_to_async
from django.conf import settings

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


def db_async(fn: Callable[P, R]) -> Callable[P, Any]:
    """Wrap a sync function touching the database so that async code can await it.

    On PostgreSQL the work runs in a pool of DB_THREADS threads (each keeps its own
    connection); on SQLite, which has a single writer, it stays on Django's one sync thread.
    See settings.DB_THREAD_SENSITIVE.
    """
    if settings.DB_THREAD_SENSITIVE:
        wrapped = database_sync_to_async(fn, thread_sensitive=True)
    else:
        wrapped = database_sync_to_async(fn, thread_sensitive=False, executor=_db_executor())
    return cast(Callable[P, Any], wrapped)
