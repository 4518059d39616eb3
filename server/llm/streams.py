"""State shared between server processes about replies being generated.

- the text streamed so far of a conversation's current reply (a late joiner starts from it);
- the per-conversation lock that makes its replies run one at a time, in order, even across
  processes. In Redis it expires if its holder dies (it is kept alive while held).

With REDIS_URL both live in Redis; without it (one process by definition) in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from chat.conversations import Conversation
from core.redis_client import async_redis, pipelined

logger = logging.getLogger(__name__)


@dataclass
class Snapshot:
    stream_id: str
    text: str
    index: int  # the last delta whose text is included
    timestamp: str
    # The message the reply answers and its model (for the ai_stream_start a late joiner gets).
    reply_to: int | None = None
    model: str | None = None


def _key(kind: str, conversation: Conversation) -> str:
    return f"{settings.CHANNEL_PREFIX}:llm:{kind}:{conversation.key}"


_memory_snapshots: dict[Conversation, Snapshot] = {}
_memory_locks: weakref.WeakValueDictionary[Conversation, asyncio.Lock] = (
    weakref.WeakValueDictionary()
)


def _snapshot_ttl() -> int:
    # Outlives the longest silence a healthy stream can have.
    return int(settings.LLM_TIMEOUT_SECONDS) + 30


async def snapshot_set(conversation: Conversation, snapshot: Snapshot) -> None:
    """Written at every flush of every reply streaming, so pipelined with the other replies'
    (`pipelined`); a reply's own writes stay in order, each awaited before the next."""
    if settings.REDIS_URL:
        # Its fields are plain values: `vars` gives what `asdict` would, without the deep
        # copy `asdict` makes of every field at every flush.
        data = json.dumps(vars(snapshot))
        await pipelined("SET", _key("stream", conversation), data, "EX", _snapshot_ttl())
    else:
        _memory_snapshots[conversation] = snapshot


async def snapshot_get(conversation: Conversation) -> Snapshot | None:
    if settings.REDIS_URL:
        raw = await async_redis().get(_key("stream", conversation))
        return Snapshot(**json.loads(raw)) if raw else None
    return _memory_snapshots.get(conversation)


async def snapshot_clear(conversation: Conversation) -> None:
    if settings.REDIS_URL:
        await pipelined("DEL", _key("stream", conversation))
    else:
        _memory_snapshots.pop(conversation, None)


@contextlib.asynccontextmanager
async def conversation_lock(conversation: Conversation) -> AsyncIterator[None]:
    """Hold the conversation's generation lock (waiting for it as long as it takes)."""
    if not settings.REDIS_URL:
        lock = _memory_locks.get(conversation)
        if lock is None:
            lock = _memory_locks[conversation] = asyncio.Lock()
        async with lock:
            yield
        return
    ttl = settings.LLM_LOCK_TTL_SECONDS
    redis_lock = async_redis().lock(_key("lock", conversation), timeout=ttl, sleep=0.05)
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
            logger.warning("Reply lock of %s was lost before release", conversation)


async def _keep_alive(redis_lock: Any, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await redis_lock.reacquire()
        except Exception:
            logger.exception("Could not renew a reply lock")
