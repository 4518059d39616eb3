"""The pub/sub channel layer's pipelined publishing (core.layers)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels_redis.pubsub import RedisPubSubChannelLayer as StockLayer
from redis.exceptions import ConnectionError as RedisConnectionError

from core.layers import RedisPubSubChannelLayer

pytestmark = pytest.mark.redis


def _layer(cls, settings, prefix: str):  # type: ignore[no-untyped-def]
    return cls(hosts=[settings.REDIS_URL], prefix=prefix)


async def _listener(layer, group: str) -> str:  # type: ignore[no-untyped-def]
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


@pytest.fixture
async def pair(settings) -> AsyncIterator[tuple[RedisPubSubChannelLayer, Any, str]]:
    """A publishing layer, and a receiving one (a second process) listening to "room"."""
    prefix = f"layers-{uuid.uuid4().hex[:8]}"
    publisher = _layer(RedisPubSubChannelLayer, settings, prefix)
    receiver = _layer(RedisPubSubChannelLayer, settings, prefix)
    try:
        yield publisher, receiver, await _listener(receiver, "room")
    finally:
        await publisher.flush()
        await receiver.flush()


async def test_concurrent_publishes_all_arrive_in_the_order_they_were_sent(pair):
    publisher, receiver, channel = pair
    # Many at once, so that most of them queue behind a pipeline in flight.
    await asyncio.gather(*(publisher.group_send("room", {"type": "m", "n": n}) for n in range(500)))
    got = [(await asyncio.wait_for(receiver.receive(channel), 5))["n"] for _ in range(500)]
    assert got == list(range(500))


async def test_processes_on_the_stock_layer_hear_it_and_are_heard(settings):
    prefix = f"layers-{uuid.uuid4().hex[:8]}"
    ours = _layer(RedisPubSubChannelLayer, settings, prefix)
    stock = _layer(StockLayer, settings, prefix)
    try:
        ours_channel = await _listener(ours, "room")
        stock_channel = await _listener(stock, "room")
        await ours.group_send("room", {"type": "m", "from": "ours"})
        await stock.group_send("room", {"type": "m", "from": "stock"})
        for layer, channel in ((ours, ours_channel), (stock, stock_channel)):
            got = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(2)]
            assert [m["from"] for m in got] == ["ours", "stock"]
    finally:
        await ours.flush()
        await stock.flush()


async def test_every_publisher_gets_the_error_when_redis_is_unreachable():
    layer = RedisPubSubChannelLayer(hosts=["redis://127.0.0.1:1/0"], prefix="layers-down")
    results = await asyncio.wait_for(
        asyncio.gather(
            *(layer.group_send("room", {"type": "m", "n": n}) for n in range(20)),
            return_exceptions=True,
        ),
        10,
    )
    assert all(isinstance(r, RedisConnectionError) for r in results), results
    # Nothing is left queued, and a later publish fails the same way instead of hanging.
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(layer.group_send("room", {"type": "m"}), 10)
    await layer.flush()


async def test_a_cancelled_publisher_does_not_break_the_others(pair):
    publisher, receiver, channel = pair
    tasks = [
        asyncio.create_task(publisher.group_send("room", {"type": "m", "n": n})) for n in range(50)
    ]
    tasks[10].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(r).__name__ for r in results].count("CancelledError") == 1
    got = []
    while len(got) < 49:
        got.append((await asyncio.wait_for(receiver.receive(channel), 5))["n"])
    assert got == sorted(got)
    assert set(range(50)) - set(got) <= {10}
