"""Rate limits counted in a store that every server process shares.

With `REDIS_URL` set the counters live in Redis (the `limits` library, moving windows), so two
processes enforce one limit; without it they live in this process's memory. Socket handlers
count in their database-thread call (see chat.services.amessage_post), so one synchronous
limiter serves HTTP and sockets alike.
"""

from __future__ import annotations

import math
import time
from functools import cache
from typing import cast

from django.conf import settings
from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from core.errors import RateLimited


@cache
def parse_rate(rate: str) -> RateLimitItem:
    """'10/minute' -> a limits item (raises ValueError on a malformed rate)."""
    return parse(rate)


def _key_prefix() -> str:
    return f"{settings.CHANNEL_PREFIX}:rl"


@cache
def _limiter() -> MovingWindowRateLimiter:
    if settings.REDIS_URL:
        storage = storage_from_string(settings.REDIS_URL, key_prefix=_key_prefix())
    else:
        storage = storage_from_string("memory://")
    return MovingWindowRateLimiter(cast(Storage, storage))


def _retry_after(reset_time: float) -> int:
    return max(1, math.ceil(reset_time - time.time()))


def hit(scope: str, key: str, rate: str, *, message: str | None = None) -> None:
    """Count one event; raise RateLimited (with retry_after) if it is over the limit."""
    item = parse_rate(rate)
    limiter = _limiter()
    if not limiter.hit(item, scope, key):
        stats = limiter.get_window_stats(item, scope, key)
        raise RateLimited(message, retry_after=_retry_after(stats.reset_time))


def count(scope: str, key: str, rate: str) -> None:
    """Count one event without refusing it (a counter already at its limit stays full)."""
    _limiter().hit(parse_rate(rate), scope, key)


def counted(scope: str, key: str, rate: str) -> int:
    """How many events the window holds now."""
    item = parse_rate(rate)
    return int(item.amount - _limiter().get_window_stats(item, scope, key).remaining)


def blocked_for(scope: str, key: str, rate: str) -> int | None:
    """Seconds until one more event would be within the limit; None when it would be now."""
    item = parse_rate(rate)
    limiter = _limiter()
    if limiter.test(item, scope, key):
        return None
    return _retry_after(limiter.get_window_stats(item, scope, key).reset_time)


def check(scope: str, key: str, rate: str, *, message: str | None = None) -> None:
    """Raise RateLimited if one more event would be over the limit, counting nothing."""
    wait = blocked_for(scope, key, rate)
    if wait is not None:
        raise RateLimited(message, retry_after=wait)


def reset() -> None:
    """Forget every counter (tests, and `manage.py` operators after changing a rate)."""
    _limiter().storage.reset()
    _once.clear()


_once: dict[str, float] = {}


async def once_per(key: str, seconds: float) -> bool:
    """True for the first call with `key` in any `seconds`, on any server process; False for
    the others (which count for nothing: the window starts at the call that passed)."""
    if settings.REDIS_URL:
        from core.redis_client import async_redis

        name = f"{_key_prefix()}:once:{key}"
        return bool(await async_redis().set(name, 1, nx=True, px=int(seconds * 1000)))
    now = time.monotonic()
    if _once.get(key, 0.0) > now:
        return False
    if len(_once) > 10_000:  # forget the windows that ended
        for stale in [k for k, until in _once.items() if until <= now]:
            del _once[stale]
    _once[key] = now + seconds
    return True
