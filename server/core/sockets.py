"""The cap on open sockets per user (MAX_SOCKETS_PER_USER), across every server process.

With REDIS_URL each user has a sorted set of socket ids scored by when the entry expires;
live sockets are re-announced by their process's hub every HUB_REFRESH_SECONDS, so sockets of
a process that died stop counting after a few minutes. Without Redis (one process) a set in
memory does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.conf import settings

from core.redis_client import async_redis

_memory: dict[int, set[str]] = {}


def _ttl() -> int:
    return 3 * settings.HUB_REFRESH_SECONDS


def _key(user_id: int) -> str:
    return f"{settings.CHANNEL_PREFIX}:sockets:{user_id}"


async def register(user_id: int, socket_id: str) -> bool:
    """Count a new socket; False (and nothing counted) if the user is at the cap."""
    cap = settings.MAX_SOCKETS_PER_USER
    if not settings.REDIS_URL:
        sockets = _memory.setdefault(user_id, set())
        if cap > 0 and len(sockets) >= cap:
            return False
        sockets.add(socket_id)
        return True
    now = time.time()
    key = _key(user_id)
    client = async_redis()
    async with client.pipeline(transaction=True) as pipe:
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zadd(key, {socket_id: now + _ttl()})
        pipe.zcard(key)
        pipe.expire(key, _ttl())
        _, _, count, _ = await pipe.execute()
    if cap > 0 and count > cap:
        await client.zrem(key, socket_id)
        return False
    return True


async def unregister(user_id: int, socket_id: str) -> None:
    if not settings.REDIS_URL:
        sockets = _memory.get(user_id)
        if sockets is not None:
            sockets.discard(socket_id)
            if not sockets:
                del _memory[user_id]
        return
    await async_redis().zrem(_key(user_id), socket_id)


async def refresh(entries: Iterable[tuple[int, str]]) -> None:
    """Extend the entries of this process's live sockets."""
    if not settings.REDIS_URL:
        return
    expires = time.time() + _ttl()
    async with async_redis().pipeline(transaction=False) as pipe:
        for user_id, socket_id in entries:
            pipe.zadd(_key(user_id), {socket_id: expires})
            pipe.expire(_key(user_id), _ttl())
        await pipe.execute()


def reset() -> None:
    """Forget the in-memory registry (tests)."""
    _memory.clear()
