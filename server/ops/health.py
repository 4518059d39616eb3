"""Readiness: whether this process can serve, part by part.

Each check is bounded in time and they run side by side, so a load balancer's probe gets an
answer in about `CHECK_TIMEOUT_SECONDS` even when a service hangs. What a check says is shown
to staff and the METRICS_TOKEN bearer only (ops.views.readyz), and even they get a failure's
kind, not its text: the exception itself, which may hold a password, goes to the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import uuid4

from channels.layers import BaseChannelLayer, get_channel_layer
from django.core.cache import cache, caches
from django.db import connection

from core.db import db_async
from llm.providers import provider_name

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 3.0


class NotReady(Exception):
    """A check's failure whose message may be shown in the detailed answer."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    ms: float


def _database_ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone() != (1,):
            raise NotReady("the database answered SELECT 1 with something else")


async def check_database() -> str:
    await db_async(_database_ping)()
    return connection.vendor


# One probe channel per layer and event loop, reused: the Redis pub/sub layer keeps a
# subscription for every channel it has received on, so a new channel per probe would add one
# every few seconds for the life of the process.
_probe_channels: weakref.WeakKeyDictionary[
    BaseChannelLayer, tuple[asyncio.AbstractEventLoop, str, asyncio.Lock]
] = weakref.WeakKeyDictionary()


async def _probe_channel(layer: BaseChannelLayer) -> tuple[str, asyncio.Lock]:
    loop = asyncio.get_running_loop()
    entry = _probe_channels.get(layer)
    if entry is None or entry[0] is not loop:
        entry = _probe_channels[layer] = (loop, await layer.new_channel(), asyncio.Lock())
    return entry[1], entry[2]


async def check_channel_layer() -> str:
    """A message sent to a channel of this process comes back: the layer (Redis, when
    configured) carries messages."""
    layer = get_channel_layer()
    if layer is None:
        raise NotReady("no channel layer is configured")
    channel, lock = await _probe_channel(layer)
    # One probe at a time on the channel, so that each receives its own message; one left by
    # a probe that timed out is skipped.
    async with lock:
        token = uuid4().hex
        await layer.send(channel, {"type": "readyz.ping", "token": token})
        while (await layer.receive(channel)).get("token") != token:
            pass
    return type(layer).__name__


async def check_cache() -> str:
    key = f"readyz:{uuid4().hex}"
    token = uuid4().hex
    await cache.aset(key, token, timeout=30)
    try:
        if await cache.aget(key) != token:
            raise NotReady("the cache did not return what was stored")
    finally:
        await cache.adelete(key)
    return type(caches["default"]).__name__


async def check_ai_provider() -> str:
    """The AI sessions have a provider (SPEC 7.1): a key for `openai`, or the offline `echo`,
    chosen or as the fallback with DEBUG on. Configuration only: the provider is not called
    (`manage.py llm_check` does that)."""
    name = provider_name()
    if name is None:
        raise NotReady(
            "not configured: set OPENAI_API_KEY, or LLM_PROVIDER=echo for the offline assistant"
        )
    return name


CHECKS: dict[str, Callable[[], Awaitable[str]]] = {
    "database": check_database,
    "channel_layer": check_channel_layer,
    "cache": check_cache,
    "ai_provider": check_ai_provider,
}


async def _run(name: str, check: Callable[[], Awaitable[str]]) -> CheckResult:
    started = time.perf_counter()
    ok = False
    try:
        detail = await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
        ok = True
    except TimeoutError:
        detail = f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
        logger.warning("Readiness check %s timed out", name)
    except NotReady as exc:
        detail = str(exc)
        logger.warning("Readiness check %s failed: %s", name, detail)
    except Exception as exc:
        detail = f"failed ({type(exc).__name__})"
        logger.warning("Readiness check %s failed", name, exc_info=True)
    elapsed = (time.perf_counter() - started) * 1000
    return CheckResult(name=name, ok=ok, detail=detail, ms=round(elapsed, 1))


async def readiness() -> list[CheckResult]:
    return list(await asyncio.gather(*(_run(name, check) for name, check in CHECKS.items())))
