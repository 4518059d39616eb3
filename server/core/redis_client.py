"""The asyncio Redis client of this event loop (a client belongs to the loop that made it)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from django.conf import settings

T = TypeVar("T")

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


class Batcher(Generic[T]):
    """Items sent in batches by one loop: the items queued while one batch is in flight go out
    together in the next, in the order they were queued, and each caller gets its own item's
    answer or error. `send(items)` returns one answer per item (an exception instance for an
    item that failed) or raises for them all.

    For small Redis writes that many tasks make at once (the layer's publishes, the snapshot of
    every reply streaming at each flush): a command on its own takes a pooled connection,
    checks it, writes and reads for one answer, and that fixed cost per round trip, not the
    command, is what a busy process pays.
    """

    def __init__(self, send: Callable[[list[T]], Awaitable[list[Any]]]) -> None:
        self._send = send
        self._queued: list[tuple[T, asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> Any:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((item, done))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_queued())
        return await done

    async def _send_queued(self) -> None:
        batch: list[tuple[T, asyncio.Future[Any]]] = []
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                try:
                    answers = await self._send([item for item, _ in batch])
                except Exception as exc:
                    answers = [exc] * len(batch)
                for (_, done), answer in zip(batch, answers, strict=True):
                    if done.done():  # its caller was cancelled
                        continue
                    if isinstance(answer, Exception):
                        done.set_exception(answer)
                    else:
                        done.set_result(answer)
                batch = []
        except BaseException as exc:
            # Cancelled with the loop (or the layer's flush): nobody may wait for ever.
            for _, done in batch + self._queued:
                if not done.done():
                    done.set_exception(exc)
            self._queued = []
            raise
        finally:
            self._sender = None


async def _commands(commands: list[tuple[Any, ...]]) -> list[Any]:
    pipe = async_redis().pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    answers: list[Any] = await pipe.execute(raise_on_error=False)
    return answers


_pipeliners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batcher[tuple[Any, ...]]] = (
    weakref.WeakKeyDictionary()
)


async def pipelined(*command: Any) -> Any:
    """Run one Redis command (`"SET", key, value, "EX", 60`) in this loop's next pipeline."""
    loop = asyncio.get_running_loop()
    pipeliner = _pipeliners.get(loop)
    if pipeliner is None:
        pipeliner = _pipeliners[loop] = Batcher(_commands)
    return await pipeliner.submit(command)
