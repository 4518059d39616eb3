"""typing: presence and typing must not tax a big room (issue 14).

One room of 500 members on one process, one sender at 10 chat messages/s. The same run measures
the chat's fan-out twice: alone, then while 50 of the members say they are typing. Typists send
`typing` every second (three times what the web client sends, so that the server's throttle of
one announcement per user per 2 s is what holds the rate down). Targets: chat fan-out p99 with
typing within 1.2x of the p99 without; each member told of each typist under once a second
(the typists of a second come in one frame: chat/typing.py). The phases alternate (without,
with, three times) and each figure is the median phase of its kind, so that a slow moment of the
shared machine does not land on one side only.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid

from bench import client, seed
from bench.context import Bench
from bench.scenarios.fanout import Phase

MEMBERS = 500
TYPISTS = 50
RATE = 10
TYPING_EVERY_SECONDS = 1.0
P99_RATIO_TARGET = 1.2
TYPING_PER_TYPIST_TARGET = 1.0
DRAIN_SECONDS = 5.0
PAIRS = 3
CONFIGS = (("app, 1 process, in-memory layer", False), ("app, 1 process, Redis layer", True))


async def _typists(conns: list, stop: asyncio.Event) -> None:
    frame = json.dumps({"type": "typing"})

    async def one(conn) -> None:  # type: ignore[no-untyped-def]
        await asyncio.sleep(random.random() * TYPING_EVERY_SECONDS)
        while not stop.is_set():
            await conn.send(frame)
            await asyncio.sleep(TYPING_EVERY_SECONDS)

    await asyncio.gather(*(one(c) for c in conns))


async def _measure(bench: Bench, name: str, redis: bool, duration: float) -> None:
    room = (await asyncio.to_thread(seed.make_rooms, bench.prefix(), 1, MEMBERS))[0]
    with bench.servers(1, redis=redis, name=f"typing-{'redis' if redis else 'memory'}") as procs:
        url = procs[0].ws_url
        conns = await client.open_many(
            [(f"{url}/ws/chat/{room.room_id}/", m.cookie) for m in room.members]
        )
        sender, typists = conns[0], conns[1 : 1 + TYPISTS]
        phases: dict[int, Phase] = {}
        typing_seen = {"frames": 0, "names": 0, "measuring": False}

        def on_text(text: str, now_ns: int) -> None:
            if '"type":"typing"' in text:
                if typing_seen["measuring"]:
                    typing_seen["frames"] += 1
                    typing_seen["names"] += len(json.loads(text)["usernames"])
                return
            found = client.parse(text)
            if found is None:
                return
            phase = phases.get(found[0])
            if phase is not None:
                phase.received += 1
                phase.latencies_ms.append((now_ns - found[2]) / 1e6)

        readers = [client.reader(c, on_text) for c in conns]
        # Warm-up: the first typing of a process opens its connections to Redis, which is not
        # what a room pays for each person typing.
        warm = asyncio.Event()
        warming = asyncio.create_task(_typists(typists, warm))
        await asyncio.sleep(3 * TYPING_EVERY_SECONDS)
        warm.set()
        await warming
        await asyncio.sleep(1)
        p99 = {False: [], True: []}
        # Per member and second: typing frames, and how often each typist is named in them.
        frame_rates: list[float] = []
        rates: list[float] = []
        try:
            for index, typing in enumerate((False, True) * PAIRS):
                phase = phases[index] = Phase()
                stop = asyncio.Event()
                typing_task = asyncio.create_task(_typists(typists, stop)) if typing else None
                if typing:
                    await asyncio.sleep(2 * TYPING_EVERY_SECONDS)  # typing under way
                    typing_seen["frames"] = typing_seen["names"] = 0
                    typing_seen["measuring"] = True
                started = time.perf_counter()
                count = int(RATE * duration)

                async def send(seq: int, source: int = index) -> None:
                    await sender.send(
                        client.chat_frame(client.payload(source, seq), client_id=uuid.uuid4().hex)
                    )

                await client.paced(count, RATE, send)
                phase.sent = count
                expected = count * len(conns)
                await client.wait_until(lambda p=phase, e=expected: p.received >= e, DRAIN_SECONDS)
                window = time.perf_counter() - started
                if typing_task is not None:
                    typing_seen["measuring"] = False
                    stop.set()
                    await typing_task
                    per_member = len(conns) * window
                    frame_rates.append(typing_seen["frames"] / per_member)
                    rates.append(typing_seen["names"] / per_member / TYPISTS)
                p99[typing].append(client.percentile(phase.latencies_ms, 99))
                bench.add(
                    "typing",
                    name,
                    f"run {index + 1}: {'with' if typing else 'without'} typing, p99",
                    p99[typing][-1],
                    "ms",
                )
                lost = expected - phase.received
                bench.add(
                    "typing",
                    name,
                    f"run {index + 1}: chat deliveries lost",
                    float(lost),
                    "frames",
                    target="0",
                    ok=lost == 0,
                )
            base, loaded = statistics.median(p99[False]), statistics.median(p99[True])
            bench.add("typing", name, "chat p99 without typing (median run)", base, "ms")
            bench.add("typing", name, "chat p99 with 50 typing (median run)", loaded, "ms")
            bench.add(
                "typing",
                name,
                "p99 with / without typing",
                loaded / base,
                "x",
                target=f"<= {P99_RATIO_TARGET}",
                ok=loaded / base <= P99_RATIO_TARGET,
            )
            bench.add("typing", name, "typing frames per member", max(frame_rates), "/s")
            bench.add(
                "typing",
                name,
                "times a member is told of one typist",
                max(rates),
                "/s",
                target=f"< {TYPING_PER_TYPIST_TARGET:g}",
                ok=max(rates) < TYPING_PER_TYPIST_TARGET,
            )
        finally:
            for task in readers:
                task.cancel()
            await client.close_all(conns)


async def run(bench: Bench) -> None:
    duration = 4.0 if bench.quick else 12.0
    for name, redis in CONFIGS:
        print(f"typing: {name}", flush=True)
        await _measure(bench, name, redis, duration)
