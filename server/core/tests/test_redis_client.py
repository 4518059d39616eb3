"""Commands sent in pipelines (core.redis_client.pipelined): each caller gets its own answer or
error, in the order the commands were queued."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.exceptions import ResponseError

from core.redis_client import async_redis, pipelined

pytestmark = pytest.mark.redis


async def test_concurrent_commands_each_get_their_own_answer() -> None:
    key = f"pipelined-{uuid.uuid4().hex}"
    try:
        # Queued in one turn of the loop: they go out in pipelines, in this order.
        answers = await asyncio.gather(*(pipelined("RPUSH", key, str(i)) for i in range(300)))
        assert answers == list(range(1, 301))
        assert await async_redis().lrange(key, 0, -1) == [str(i).encode() for i in range(300)]
        assert await pipelined("GET", f"{key}-missing") is None
    finally:
        await async_redis().delete(key)


async def test_an_error_goes_to_its_own_caller_only() -> None:
    key = f"pipelined-{uuid.uuid4().hex}"
    try:
        answers: list[object] = await asyncio.gather(
            pipelined("SET", key, "x", "EX", 60),
            pipelined("INCR", key),  # not an integer
            pipelined("GET", key),
            return_exceptions=True,
        )
        before, wrong, after = answers
        assert before is True
        assert isinstance(wrong, ResponseError)
        assert after == b"x"
    finally:
        await async_redis().delete(key)
