"""Rate limits counted in a store that every server process shares.

With `REDIS_URL` set the counters live in Redis (the `limits` library, moving windows), so two
processes enforce one limit; without it they live in this process's memory. HTTP code (sync)
and socket code (async) each get a limiter on the same Redis keys.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from functools import cache
from typing import cast

from django.conf import settings
from limits import RateLimitItem, parse
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import MovingWindowRateLimiter as AsyncMovingWindowRateLimiter
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from core.errors import RateLimited
from core.redis_client import async_redis


@cache
def parse_rate(rate: str) -> RateLimitItem:
    """'10/minute' -> a limits item (raises ValueError on a malformed rate)."""
    return parse(rate)


def _key_prefix() -> str:
    return f"{settings.CHANNEL_PREFIX}:rl"


@cache
def _sync_limiter() -> MovingWindowRateLimiter:
    if settings.REDIS_URL:
        storage = storage_from_string(settings.REDIS_URL, key_prefix=_key_prefix())
    else:
        storage = storage_from_string("memory://")
    return MovingWindowRateLimiter(cast(Storage, storage))


_async_limiters: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, AsyncMovingWindowRateLimiter
] = weakref.WeakKeyDictionary()
_async_memory: AsyncStorage | None = None


def _async_limiter() -> AsyncMovingWindowRateLimiter:
    # A Redis client belongs to the event loop that made it.
    global _async_memory
    loop = asyncio.get_running_loop()
    limiter = _async_limiters.get(loop)
    if limiter is None:
        if settings.REDIS_URL:
            url = "async+" + settings.REDIS_URL
            storage = cast(
                AsyncStorage,
                storage_from_string(
                    url,
                    key_prefix=_key_prefix(),
                    implementation="redispy",
                    connection_pool=async_redis().connection_pool,
                ),
            )
        else:
            if _async_memory is None:
                _async_memory = cast(AsyncStorage, storage_from_string("async+memory://"))
            storage = _async_memory
        limiter = _async_limiters[loop] = AsyncMovingWindowRateLimiter(storage)
    return limiter


def _retry_after(reset_time: float) -> int:
    return max(1, math.ceil(reset_time - time.time()))


def hit(scope: str, key: str, rate: str, *, message: str | None = None) -> None:
    """Count one event; raise RateLimited (with retry_after) if it is over the limit."""
    item = parse_rate(rate)
    limiter = _sync_limiter()
    if not limiter.hit(item, scope, key):
        stats = limiter.get_window_stats(item, scope, key)
        raise RateLimited(message, retry_after=_retry_after(stats.reset_time))


def check(scope: str, key: str, rate: str, *, message: str | None = None) -> None:
    """Raise RateLimited if one more event would be over the limit, counting nothing."""
    item = parse_rate(rate)
    limiter = _sync_limiter()
    if not limiter.test(item, scope, key):
        stats = limiter.get_window_stats(item, scope, key)
        raise RateLimited(message, retry_after=_retry_after(stats.reset_time))


async def ahit(scope: str, key: str, rate: str, *, message: str | None = None) -> None:
    item = parse_rate(rate)
    limiter = _async_limiter()
    if not await limiter.hit(item, scope, key):
        stats = await limiter.get_window_stats(item, scope, key)
        raise RateLimited(message, retry_after=_retry_after(stats.reset_time))


def reset() -> None:
    """Forget every counter (tests, and `manage.py` operators after changing a rate)."""
    global _async_memory
    _sync_limiter().storage.reset()
    _async_memory = None
    _async_limiters.clear()
