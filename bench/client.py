"""The load client: many real WebSockets from one asyncio process, and the arithmetic.

Every chat message a benchmark sends carries a marker `bench|<source>|<seq>|<sent_ns>|`, so
a receiver finds who sent it, which one it is and when it left (perf_counter_ns of this same
process) without caring how the server wrapped it: the app's JSON frame, the tutorial
consumer's `{"message"}` or the bare server's verbatim echo.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

MARK = "bench|"
# A browser offers permessage-deflate; so does this client, so servers pay what they would.
COMPRESSION: str | None = "deflate"


def payload(source: int, seq: int, pad: int = 40) -> str:
    """A message text carrying its origin and send time, padded to a chat-like length."""
    return f"{MARK}{source}|{seq}|{time.perf_counter_ns()}|" + "x" * pad


def parse(text: str) -> tuple[int, int, int] | None:
    """(source, seq, sent_ns) of the first marker in a frame, or None."""
    i = text.find(MARK)
    if i < 0:
        return None
    parts = text[i + len(MARK) :].split("|", 3)
    try:
        return int(parts[0]), int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return None


def chat_frame(text: str, client_id: str | None = None) -> str:
    frame: dict[str, Any] = {"type": "chat_message", "message": text}
    if client_id is not None:
        frame["client_id"] = client_id
    return json.dumps(frame)


async def open_socket(url: str, cookie: str | None = None) -> ClientConnection:
    headers = {"Cookie": f"sessionid={cookie}"} if cookie else None
    return await connect(
        url,
        additional_headers=headers,
        open_timeout=60,
        ping_interval=None,
        max_size=2**20,
        compression=COMPRESSION,
        max_queue=None,
    )


async def open_many(
    targets: Sequence[tuple[str, str | None]], concurrency: int = 64
) -> list[ClientConnection]:
    """Open one socket per (url, cookie), `concurrency` handshakes at a time, in order."""
    out: list[ClientConnection | None] = [None] * len(targets)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            out[i] = await open_socket(*targets[i])

    await asyncio.gather(*(one(i) for i in range(len(targets))))
    return [c for c in out if c is not None]


async def close_all(
    conns: Iterable[ClientConnection],
    readers: Iterable[asyncio.Task[None]] = (),
    concurrency: int = 256,
) -> None:
    """Stop the `readers` of the connections, then close the connections."""
    for task in readers:
        task.cancel()
    gate = asyncio.Semaphore(concurrency)

    async def one(conn: ClientConnection) -> None:
        async with gate:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)

    await asyncio.gather(*(one(c) for c in conns))


def reader(conn: ClientConnection, on_text: Callable[[str, int], None]) -> asyncio.Task[None]:
    """A task calling on_text(text, received_ns) for every frame until the socket closes."""

    async def run() -> None:
        with contextlib.suppress(Exception):
            async for message in conn:
                if isinstance(message, str):
                    on_text(message, time.perf_counter_ns())

    return asyncio.create_task(run())


async def paced(count: int, rate: float, send: Callable[[int], Awaitable[None]]) -> float:
    """Call send(seq) `count` times at `rate` per second (open loop); returns the duration."""
    start = time.perf_counter()
    for seq in range(count):
        delay = start + seq / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(seq)
    return time.perf_counter() - start


async def wait_until(done: Callable[[], bool], within: float, step: float = 0.05) -> bool:
    deadline = time.perf_counter() + within
    while not done():
        if time.perf_counter() >= deadline:
            return False
        await asyncio.sleep(step)
    return True


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
