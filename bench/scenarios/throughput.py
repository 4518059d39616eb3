"""throughput: 200 rooms x 5 members, every member sending as fast as the server answers.

Each member sends its next message as soon as its own copy of the previous one comes back
(closed loop, one message in flight per member), so the server sets the pace. Figures are for
the measuring window: messages accepted (the sender's own copy came back), persisted (rows in
the database, for the app) and delivered (frames received by all members) per second; then
everything still in flight is awaited and nothing may be missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field

from bench import client, seed
from bench.context import Bench

ROOMS = 200
PER_ROOM = 5
TARGET_PER_PROCESS = 1000.0


@dataclass
class Config:
    name: str
    processes: int = 1
    baseline: str | None = None
    kind: str = "uvicorn"


@dataclass
class Counters:
    measuring: bool = False
    accepted: int = 0
    delivered: int = 0
    total_sent: int = 0
    total_echoed: int = 0
    total_delivered: int = 0
    events: list[asyncio.Event] = field(default_factory=list)


def configs(quick: bool) -> list[Config]:
    out = [
        Config("app, 1 process, Redis layer"),
        Config("minimal Channels chat", baseline="channels"),
    ]
    if not quick:
        out += [
            Config("app, 2 processes, Redis layer", processes=2),
            Config("app, 1 process, daphne", kind="daphne"),
        ]
    return out


async def _measure(bench: Bench, cfg: Config, duration: float) -> None:
    rooms = await asyncio.to_thread(seed.make_rooms, bench.prefix(), ROOMS, PER_ROOM)
    # The app on Redis, as in production (the layer, and the rate limits every message is
    # counted in).
    with bench.app_or_baseline(
        "throughput",
        cfg.baseline,
        f"{cfg.kind}-{cfg.processes}",
        cfg.processes,
        redis=True,
        kind=cfg.kind,
    ) as procs:
        urls = [p.ws_url for p in procs]
        targets: list[tuple[str, str | None]] = []
        for r, room in enumerate(rooms):
            for member in room.members:
                url = urls[len(targets) % len(urls)]
                if cfg.baseline is None:
                    targets.append((f"{url}/ws/chat/{room.room_id}/", member.cookie))
                else:
                    targets.append((f"{url}/ws/chat/r{r}/", None))
        conns = await client.open_many(targets)
        counts = Counters(events=[asyncio.Event() for _ in conns])

        def on_text_of(index: int):  # type: ignore[no-untyped-def]
            def on_text(text: str, _now: int) -> None:
                found = client.parse(text)
                if found is None:
                    return
                counts.total_delivered += 1
                if counts.measuring:
                    counts.delivered += 1
                if found[0] == index:
                    counts.total_echoed += 1
                    if counts.measuring:
                        counts.accepted += 1
                    counts.events[index].set()

            return on_text

        readers = [client.reader(c, on_text_of(i)) for i, c in enumerate(conns)]
        stop = asyncio.Event()

        async def member(index: int) -> None:
            seq = 0
            conn = conns[index]
            event = counts.events[index]
            while not stop.is_set():
                event.clear()
                await conn.send(
                    client.chat_frame(
                        client.payload(index, seq, pad=20), client_id=uuid.uuid4().hex
                    )
                )
                counts.total_sent += 1
                seq += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), 30)

        room_ids = [r.room_id for r in rooms]
        app = cfg.baseline is None
        rows_at_start = await asyncio.to_thread(seed.count_messages, room_ids) if app else 0
        senders = [asyncio.create_task(member(i)) for i in range(len(conns))]
        await asyncio.sleep(1.0)  # ramp up
        rows_before = await asyncio.to_thread(seed.count_messages, room_ids) if app else 0
        counts.measuring = True
        cpu0 = [p.cpu_seconds() for p in procs]
        client_cpu0 = time.process_time()
        bench.start_profiles(
            procs, f"throughput-{cfg.baseline or cfg.kind}-{cfg.processes}", duration
        )
        t0 = time.perf_counter()
        await asyncio.sleep(duration)
        counts.measuring = False
        window = time.perf_counter() - t0
        server_cpu = sum(p.cpu_seconds() for p in procs) - sum(cpu0)
        client_cpu = time.process_time() - client_cpu0
        rows_after = await asyncio.to_thread(seed.count_messages, room_ids) if app else 0
        stop.set()
        await asyncio.gather(*senders)
        # Everything sent must come back, to its sender and to every member of its room.
        await client.wait_until(lambda: counts.total_delivered >= counts.total_sent * PER_ROOM, 10)
        accepted = counts.accepted / window
        target = TARGET_PER_PROCESS * cfg.processes
        bench.add(
            "throughput",
            cfg.name,
            "accepted/s",
            accepted,
            "msg/s",
            at_least=target if app else None,
        )
        if app:
            bench.add(
                "throughput", cfg.name, "persisted/s", (rows_after - rows_before) / window, "msg/s"
            )
            stored = await asyncio.to_thread(seed.count_messages, room_ids) - rows_at_start
            bench.add(
                "throughput",
                cfg.name,
                "rows - messages sent",
                float(stored - counts.total_sent),
                "rows",
                target="0",
                ok=stored == counts.total_sent,
            )
        bench.finish_profiles()
        bench.add("throughput", cfg.name, "server CPU", 100 * server_cpu / window, "% of a core")
        bench.add(
            "throughput", cfg.name, "load client CPU", 100 * client_cpu / window, "% of a core"
        )
        bench.add("throughput", cfg.name, "delivered/s", counts.delivered / window, "frames/s")
        lost = counts.total_sent * PER_ROOM - counts.total_delivered
        bench.add(
            "throughput",
            cfg.name,
            "lost deliveries",
            float(lost),
            "frames",
            at_most=0 if cfg.baseline is None else None,
        )
        await client.close_all(conns, readers)


async def run(bench: Bench) -> None:
    duration = 5.0 if bench.quick else 20.0
    for cfg in configs(bench.quick):
        print(f"throughput: {cfg.name}", flush=True)
        await _measure(bench, cfg, duration)
