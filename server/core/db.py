"""Running ORM work from async code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

from channels.db import database_sync_to_async
from django.conf import settings

P = ParamSpec("P")
R = TypeVar("R")


def db_async(fn: Callable[P, R]) -> Callable[P, Any]:
    """Wrap a sync function touching the database so that async code can await it.

    On PostgreSQL the work runs in a thread pool (each thread keeps its own connection); on
    SQLite, which has a single writer, it stays on Django's one sync thread. See
    settings.DB_THREAD_SENSITIVE.
    """
    wrapped = database_sync_to_async(fn, thread_sensitive=settings.DB_THREAD_SENSITIVE)
    return cast(Callable[P, Any], wrapped)
