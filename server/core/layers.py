"""The channel layers: channels' in-memory one for a single process (no REDIS_URL), made cheap
per message, and channels-redis's pub/sub one with pipelined publishing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.layers import InMemoryChannelLayer as _InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer as _RedisPubSubChannelLayer
from channels_redis.pubsub import RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close

from core.redis_client import Batcher


class InMemoryChannelLayer(_InMemoryChannelLayer):  # type: ignore[misc]
    """channels' in-memory layer, expiring stale messages and groups at most once a second.

    The stock layer scans every channel and every group on each send and receive, so each
    message costs time in proportion to the rooms and users online (one group each, see
    core.hub). Expiry (60 s for a message, a day for a membership) needs no finer clock than
    a second.
    """

    CLEAN_EVERY_SECONDS = 1.0

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._cleaned_at = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._cleaned_at < self.CLEAN_EVERY_SECONDS:
            return
        self._cleaned_at = now
        super()._clean_expired()


class _PipelinedShard(RedisSingleShardConnection):  # type: ignore[misc]
    """One Redis host of the pub/sub layer, publishing in pipelines.

    channels-redis publishes one message per round trip, under a lock that keeps a process's
    messages in order: a process could publish only as often as its event loop came back to
    read Redis's answer, which capped room chat at a few hundred messages per second per
    process whatever the machine. Here the messages that queue up while one pipeline is in
    flight go out together in the next one, in the order they were published; each publisher
    still waits until its message has been handed to Redis, and gets the error if it was not.
    """

    def __init__(self, host: Any, channel_layer: Any) -> None:
        super().__init__(host, channel_layer)
        self._batcher: Batcher[tuple[str, bytes]] = Batcher(self._publish_all)

    async def publish(self, channel: str, message: bytes) -> None:
        await self._batcher.submit((channel, message))

    async def _publish_all(self, batch: list[tuple[str, bytes]]) -> list[None]:
        async with self._lock:
            self._ensure_redis()
            pipe = self._redis.pipeline(transaction=False)
            for channel, message in batch:
                pipe.publish(channel, message)
            await pipe.execute()
        return [None] * len(batch)


class _PipelinedLoopLayer(RedisPubSubLoopLayer):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        shards: list[RedisSingleShardConnection] = self._shards  # type: ignore[has-type]
        self._shards = [_PipelinedShard(shard.host, self) for shard in shards]


class RedisPubSubChannelLayer(_RedisPubSubChannelLayer):  # type: ignore[misc]
    """channels-redis's pub/sub layer (REDIS_CHANNEL_LAYER=pubsub), with pipelined publishing
    (see _PipelinedShard). Subscriptions, message format and channel names are the stock
    layer's, so processes running either can share one Redis."""

    def _get_layer(self) -> RedisPubSubLoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = _PipelinedLoopLayer(
                *self._args, **self._kwargs, channel_layer=self
            )
            _wrap_close(self, loop)
        return layer
