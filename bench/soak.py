"""`make soak`: 200 clients over two server processes, with reconnect churn and AI replies.

40 rooms of 5 members on PostgreSQL + Redis, each room with an AI session. For SOAK_SECONDS
(600 by default; CI runs 60) every member sends a room message every 2-4 s with a client_id,
one member per room asks the assistant every ~8 s, and every 5 s a tenth of the members drop
their socket and reconnect to the other process, then fetch what they missed (`after=`), as
the web client does. At the end, every member's view of its room must equal the database,
every AI reply the database holds must have reached its session, no HTTP answer may be a 5xx,
and the servers' memory at the end is compared with the memory after warm-up.

    python -m bench.soak [--seconds N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench import client, seed
from bench.context import Bench
from testkit.servers import ServerProcess, provider_env

ROOMS = 40
PER_ROOM = 5
CHURN_EVERY = 5.0
CHURN_SHARE = 0.1
MEMORY_GROWTH_LIMIT = 0.25


@dataclass
class Member:
    info: seed.Member
    room: str
    servers: list[ServerProcess]
    stats: dict[str, int]
    seen: set[int] = field(default_factory=set)
    # The id up to which this client has every message (SPEC 9.4), moved by history pages and
    # by live messages whose previous_id is the cursor; the others wait in `ahead`.
    cursor: int = 0
    ahead: dict[int, int] = field(default_factory=dict)
    conn: Any = None
    reader: asyncio.Task[None] | None = None
    where: int = 0

    def on_text(self, raw: str, _now: int) -> None:
        frame = json.loads(raw)
        if frame.get("type") == "chat_message":
            self.seen.add(frame["message_id"])
            self._follow(frame["message_id"], frame.get("previous_id"))
        elif frame.get("type") == "resync":
            self.stats["resyncs"] += 1
            asyncio.get_running_loop().create_task(self.catch_up())

    def _follow(self, message_id: int, previous_id: int | None) -> None:
        if previous_id is None or message_id <= self.cursor:
            return
        if previous_id <= self.cursor:
            self._advance(message_id)
        else:
            self.ahead[previous_id] = message_id

    def _advance(self, message_id: int) -> None:
        self.cursor = max(self.cursor, message_id)
        while self.cursor in self.ahead:
            self.cursor = self.ahead.pop(self.cursor)

    async def connect(self, where: int) -> None:
        self.where = where
        server = self.servers[where]
        self.conn = await client.open_socket(
            f"{server.ws_url}/ws/chat/{self.room}/", self.info.cookie
        )
        self.reader = client.reader(self.conn, self.on_text)
        await self.catch_up()

    async def catch_up(self) -> None:
        """Fetch what was missed, page by page, from the cursor: no window before it."""
        while True:
            path = f"/api/chat/rooms/{self.room}/messages/?after={self.cursor}&limit=200"
            status, body = await http(self.servers[self.where], self.info.cookie, path, self.stats)
            if status != 200:
                return
            for message in body["messages"]:
                self.seen.add(message["message_id"])
            if body["messages"]:
                self._advance(body["messages"][-1]["message_id"])
            if not body["has_more"] or not body["messages"]:
                return

    async def reconnect(self) -> None:
        self.stats["reconnects"] += 1
        with contextlib.suppress(Exception):
            await self.conn.close()
        await self.connect(1 - self.where)

    async def send(self) -> None:
        frame = client.chat_frame(f"soak {self.info.username} {time.time_ns()}", uuid.uuid4().hex)
        with contextlib.suppress(Exception):
            await self.conn.send(frame)
            self.stats["sent"] += 1


async def http(
    server: ServerProcess, cookie: str, path: str, stats: dict[str, int]
) -> tuple[int, Any]:
    def call() -> tuple[int, Any]:
        request = urllib.request.Request(  # noqa: S310 - a loopback URL of our own
            server.base_url + path, headers={"Cookie": f"sessionid={cookie}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, None

    status, body = await asyncio.to_thread(call)
    stats["http"] += 1
    if status >= 500:
        stats["http_5xx"] += 1
    return status, body


async def ai_member(
    room: seed.Room, server: ServerProcess, until: float, stats: dict[str, int]
) -> int:
    """One member talking with the assistant; returns the replies it received."""
    owner = room.members[0]
    conn = await client.open_socket(f"{server.ws_url}/ws/llm/{room.session_id}/", owner.cookie)
    finals = 0

    def on_text(raw: str, _now: int) -> None:
        nonlocal finals
        if '"is_ai":true' in raw and '"chat_message"' in raw:
            finals += 1

    task = client.reader(conn, on_text)
    while time.monotonic() < until:
        await asyncio.sleep(random.uniform(6, 10))
        with contextlib.suppress(Exception):
            await conn.send(client.chat_frame("soak question", uuid.uuid4().hex))
            stats["ai_asked"] += 1
    await asyncio.sleep(8)  # the last reply streams for a few seconds
    await client.close_all([conn])
    task.cancel()
    return finals


async def run(bench: Bench, seconds: float) -> bool:
    rooms = await asyncio.to_thread(
        seed.make_rooms, bench.prefix(), ROOMS, PER_ROOM, ai_sessions=True
    )
    stats = dict.fromkeys(("sent", "reconnects", "resyncs", "http", "http_5xx", "ai_asked"), 0)
    config = f"{ROOMS * PER_ROOM} clients, 2 processes, {seconds:.0f} s"
    with (
        bench.upstream(first_delay=0.3, rate=50, tokens=60) as up,
        bench.servers(
            2,
            redis=True,
            name="soak",
            **provider_env(up),
        ) as procs,
    ):
        members = [
            Member(info=m, room=r.room_id, servers=procs, stats=stats)
            for r in rooms
            for m in r.members
        ]
        for i, member in enumerate(members):
            await member.connect(i % 2)
        start = time.monotonic()
        until = start + seconds

        async def talk(member: Member) -> None:
            while time.monotonic() < until:
                await asyncio.sleep(random.uniform(2, 4))
                await member.send()

        async def churn() -> None:
            while time.monotonic() + CHURN_EVERY < until:
                await asyncio.sleep(CHURN_EVERY)
                for member in random.sample(members, int(len(members) * CHURN_SHARE)):
                    await member.reconnect()

        async def warm_memory() -> int:
            await asyncio.sleep(min(30.0, seconds / 4))
            return sum(p.rss_bytes() for p in procs)

        ai = [
            asyncio.create_task(ai_member(room, procs[i % 2], until, stats))
            for i, room in enumerate(rooms)
        ]
        warm = asyncio.create_task(warm_memory())
        await asyncio.gather(churn(), *(talk(m) for m in members))
        replies = sum(await asyncio.gather(*ai))
        await asyncio.sleep(2)  # messages in flight arrive
        end_rss = sum(p.rss_bytes() for p in procs)
        warm_rss = await warm
        for member in members:
            with contextlib.suppress(Exception):
                await member.conn.close()
            if member.reader is not None:
                member.reader.cancel()

    truth = await asyncio.to_thread(_room_ids, [r.room_id for r in rooms])
    ai_truth = await asyncio.to_thread(_ai_replies, [r.session_id for r in rooms])
    diverged = sum(1 for m in members if m.seen != truth[m.room])
    growth = (end_rss - warm_rss) / warm_rss if warm_rss else 0.0
    bench.add("soak", config, "messages saved", sum(len(ids) for ids in truth.values()))
    bench.add("soak", config, "messages sent", stats["sent"])
    bench.add("soak", config, "reconnects", stats["reconnects"])
    bench.add("soak", config, "clients whose view != database", diverged, "", "0", diverged == 0)
    bench.add("soak", config, "AI replies saved", ai_truth)
    bench.add("soak", config, "AI replies received", replies, "", "= saved", replies == ai_truth)
    bench.add("soak", config, "HTTP answers", stats["http"])
    bench.add("soak", config, "HTTP 5xx", stats["http_5xx"], "", "0", stats["http_5xx"] == 0)
    bench.add(
        "soak",
        config,
        "memory growth after warm-up",
        growth * 100,
        "%",
        f"< {MEMORY_GROWTH_LIMIT * 100:.0f}",
        growth < MEMORY_GROWTH_LIMIT,
    )
    return (
        diverged == 0
        and replies == ai_truth
        and stats["http_5xx"] == 0
        and growth < MEMORY_GROWTH_LIMIT
    )


def _room_ids(room_ids: list[str]) -> dict[str, set[int]]:
    from chat.models import Message

    out: dict[str, set[int]] = {r: set() for r in room_ids}
    for room_id, message_id in Message.objects.filter(
        room_id__in=room_ids, ai_session__isnull=True
    ).values_list("room_id", "id"):
        out[str(room_id)].add(message_id)
    return out


def _ai_replies(session_ids: list[str]) -> int:
    from chat.models import Message

    return Message.objects.filter(
        ai_session_id__in=session_ids, sender__username="AI_Assistant"
    ).count()


def main() -> int:
    from bench.__main__ import raise_open_files, table

    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "600"))
    )
    args = parser.parse_args()
    bench = Bench(quick=False)
    raise_open_files()
    print(f"soak {bench.run_id}: {args.seconds:.0f} s", flush=True)
    bench.prepare_database()
    ok = asyncio.run(run(bench, args.seconds))
    print()
    print(table(bench.results))
    print("soak: " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
