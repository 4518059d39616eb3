"""One server process per in-memory channel layer.

Without REDIS_URL the channel layer lives in a process's memory: an event reaches only the
sockets of the process that published it. Two processes serving one database that way (uvicorn
`--workers 2`, a WEB_CONCURRENCY left in the environment, two `make run`s on one SQLite file)
would each keep their own sockets to themselves, and every room would split in silence: a
message saved by one process never reaches a member connected to the other.

So a process on the in-memory layer claims the database for itself before it serves, and a
second one refuses to start, saying what to do:

- SQLite: an exclusive `flock` on a file beside the database (`db.sqlite3.serving`), released
  by the kernel when the process ends, however it ends;
- PostgreSQL: a session-level advisory lock held by a connection of its own for the life of
  the process, which also catches a second machine pointed at the same database.

With REDIS_URL every process shares the layer and nothing is claimed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

ADVICE = (
    "Another server process is already serving this database on the in-memory channel layer "
    "(REDIS_URL is not set). Each process would reach only its own sockets and rooms would "
    "split in silence. Set REDIS_URL to share the channel layer between processes, or run a "
    "single worker (make run; make serve WORKERS=1; uvicorn without --workers or "
    "WEB_CONCURRENCY)."
)


class SeveralProcesses(RuntimeError):
    """This process may not serve: another one already serves the database in memory."""

    def __init__(self) -> None:
        super().__init__(ADVICE)


_lock = threading.Lock()
# What holds the claim for the life of the process (an open file or a database connection).
_holder: Any = None


def claim() -> None:
    """Claim the database for this process when the channel layer is in-memory (idempotent);
    raise SeveralProcesses when another live process holds it."""
    global _holder
    if settings.REDIS_URL:
        return
    with _lock:
        if _holder is not None:
            return
        database = settings.DATABASES["default"]
        if database["ENGINE"] == "django.db.backends.sqlite3":
            _holder = _claim_sqlite(str(database["NAME"]))
        elif database["ENGINE"] == "django.db.backends.postgresql":
            _holder = _claim_postgres()
        else:  # pragma: no cover - the settings allow only these two
            _holder = object()


def _claim_sqlite(name: str) -> Any:
    if not name or name == ":memory:" or name.startswith("file:"):
        return object()  # a database of this process alone
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no flock, no check
        logger.debug("No flock on this platform; the single-process check is skipped")
        return object()
    path = Path(f"{name}.serving")
    handle = path.open("a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SeveralProcesses() from None
    return handle


def advisory_key() -> int:
    """The advisory lock's key: the same for every process of one deployment (CHANNEL_PREFIX)."""
    digest = hashlib.sha256(f"{settings.CHANNEL_PREFIX}:in-memory-layer".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _claim_postgres() -> Any:
    wrapper = connections.create_connection("default")
    wrapper.ensure_connection()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [advisory_key()])
        (taken,) = cursor.fetchone()
    if not taken:
        wrapper.close()
        raise SeveralProcesses()
    return wrapper


async def claim_async() -> None:
    """`claim` from the event loop (a start-up hook, the hub's first socket)."""
    from asgiref.sync import sync_to_async

    from core.lifespan import StartupRefused

    try:
        await sync_to_async(claim, thread_sensitive=False)()
    except SeveralProcesses as refused:
        raise StartupRefused(str(refused)) from None
