"""State shared between server processes about replies being generated.

- the text streamed so far of a session's current reply (a late joiner starts from it);
- the per-session lock that makes replies of one session run one at a time, in order, even
  across processes. In Redis it expires if its holder dies (it is kept alive while held).

With REDIS_URL both live in Redis; without it (one process by definition) in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

from django.conf import settings

from core.redis_client import async_redis

logger = logging.getLogger(__name__)


@dataclass
class Snapshot:
    stream_id: str
    text: str
    index: int  # the last delta whose text is included
    timestamp: str


def _key(kind: str, session_id: UUID) -> str:
    return f"{settings.CHANNEL_PREFIX}:llm:{kind}:{session_id.hex}"


_memory_snapshots: dict[UUID, Snapshot] = {}
_memory_locks: weakref.WeakValueDictionary[UUID, asyncio.Lock] = weakref.WeakValueDictionary()


def _snapshot_ttl() -> int:
    # Outlives the longest silence a healthy stream can have.
    return int(settings.LLM_TIMEOUT_SECONDS) + 30


async def snapshot_set(session_id: UUID, snapshot: Snapshot) -> None:
    if settings.REDIS_URL:
        await async_redis().set(
            _key("stream", session_id), json.dumps(asdict(snapshot)), ex=_snapshot_ttl()
        )
    else:
        _memory_snapshots[session_id] = snapshot


async def snapshot_get(session_id: UUID) -> Snapshot | None:
    if settings.REDIS_URL:
        raw = await async_redis().get(_key("stream", session_id))
        return Snapshot(**json.loads(raw)) if raw else None
    return _memory_snapshots.get(session_id)


async def snapshot_clear(session_id: UUID) -> None:
    if settings.REDIS_URL:
        await async_redis().delete(_key("stream", session_id))
    else:
        _memory_snapshots.pop(session_id, None)


@contextlib.asynccontextmanager
async def session_lock(session_id: UUID) -> AsyncIterator[None]:
    """Hold the session's generation lock (waiting for it as long as it takes)."""
    if not settings.REDIS_URL:
        lock = _memory_locks.get(session_id)
        if lock is None:
            lock = _memory_locks[session_id] = asyncio.Lock()
        async with lock:
            yield
        return
    ttl = settings.LLM_LOCK_TTL_SECONDS
    redis_lock = async_redis().lock(_key("lock", session_id), timeout=ttl, sleep=0.05)
    await redis_lock.acquire()
    keeper = asyncio.create_task(_keep_alive(redis_lock, ttl / 3))
    try:
        yield
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        try:
            await redis_lock.release()
        except Exception:  # expired and taken by another process: nothing to release
            logger.warning("Session lock %s was lost before release", session_id)


async def _keep_alive(redis_lock: Any, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await redis_lock.reacquire()
        except Exception:
            logger.exception("Could not renew a session lock")


async def lock_is_free(session_id: UUID) -> bool:
    if settings.REDIS_URL:
        return not await async_redis().exists(_key("lock", session_id))
    lock = _memory_locks.get(session_id)
    return lock is None or not lock.locked()
