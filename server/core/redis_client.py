"""The asyncio Redis client of this event loop (a client belongs to the loop that made it)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from django.conf import settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def async_redis() -> Any:
    """A redis.asyncio client for REDIS_URL, shared by everything on this loop."""
    import redis.asyncio

    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    return client
