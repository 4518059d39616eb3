"""The asyncio Redis client of this event loop (a client belongs to the loop that made it)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from django.conf import settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

# Connections per process. A command takes a connection for one round trip, so a few dozen
# serve thousands of sockets; an unbounded pool opens one per concurrent command under load,
# and opening one costs more CPU than the command it carries.
MAX_CONNECTIONS = 32
# How long a command waits for a free connection before failing with ConnectionError.
POOL_TIMEOUT_SECONDS = 10


def async_redis() -> Any:
    """A redis.asyncio client for REDIS_URL, shared by everything on this loop."""
    import redis.asyncio

    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=MAX_CONNECTIONS, timeout=POOL_TIMEOUT_SECONDS
        )
        client = _clients[loop] = redis.asyncio.Redis(connection_pool=pool)
    return client


_sync_client: Any = None


def sync_redis() -> Any:
    """A redis-py client for REDIS_URL for synchronous code (views, database threads), shared
    by the process's threads (redis-py's pool is thread-safe)."""
    import redis

    global _sync_client
    if _sync_client is None:
        pool = redis.BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=MAX_CONNECTIONS, timeout=POOL_TIMEOUT_SECONDS
        )
        _sync_client = redis.Redis(connection_pool=pool)
    return _sync_client
