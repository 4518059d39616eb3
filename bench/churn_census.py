"""Whether connect-disconnect churn leaves Python objects behind in the server.

`python -m bench.churn_census` runs the app's ASGI application under uvicorn inside this
process (PostgreSQL + Redis, as the idle scenario), opens and closes room sockets in rounds,
and after each round prints the change in live objects by type (after a full collection) and
the largest tracemalloc differences. RSS alone cannot tell a leak from the allocator keeping
freed memory; flat object counts and traced memory can. The client runs in the same process,
so its objects are counted too (they are freed with their connections).

Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/chat_census,
re-created) and BENCH_REDIS_URL (default redis://127.0.0.1:6379/7).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import secrets
import tracemalloc

from bench import client, seed
from bench.scenarios.idle import churn
from testkit.servers import app_env, free_port

ROOMS = 40
PER_ROOM = 5


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _census() -> collections.Counter[str]:
    gc.collect()
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


async def _run(rounds: int, cycles: int, port: int, targets: list[tuple[str, str | None]]) -> None:
    import uvicorn

    from config.asgi import application

    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            log_level="warning",
            ws_per_message_deflate=False,
        )
    )
    serving = asyncio.create_task(server.serve())
    await client.wait_until(lambda: server.started, 30)
    await churn(targets, 300)  # warm-up: code and caches loaded on first use
    await asyncio.sleep(2)
    tracemalloc.start(8)
    before, snap_before = _census(), tracemalloc.take_snapshot()
    for n in range(1, rounds + 1):
        await churn(targets, cycles)
        await asyncio.sleep(2)
        after, snap_after = _census(), tracemalloc.take_snapshot()
        changed = sorted(
            ((k, after[k] - before[k]) for k in after | before if after[k] != before[k]),
            key=lambda kv: -abs(kv[1]),
        )
        traced = sum(s.size_diff for s in snap_after.compare_to(snap_before, "filename"))
        print(
            f"round {n} ({cycles} cycles): RSS {_rss_kib():,} KiB, live objects {after.total():,} "
            f"({after.total() - before.total():+,}), traced memory {traced / 1024:+,.1f} KiB; "
            f"by type: {changed[:8]}",
            flush=True,
        )
        before, snap_before = after, snap_after
    server.should_exit = True
    await serving


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.churn_census")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=500)
    args = parser.parse_args()
    import psycopg

    database_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chat_census"
    )
    base, name = database_url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = app_env(
        database_url=database_url,
        redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"),
        prefix="census",
        secret_key=secrets.token_urlsafe(50),
        MAX_SOCKETS_PER_USER="100",
    )
    os.environ.update(env)
    import django

    django.setup()
    seed.migrate()
    rooms = seed.make_rooms("census", ROOMS, PER_ROOM)
    port = free_port()
    targets: list[tuple[str, str | None]] = [
        (f"ws://127.0.0.1:{port}/ws/chat/{room.room_id}/", member.cookie)
        for room in rooms
        for member in room.members
    ]
    try:
        asyncio.run(_run(args.rounds, args.cycles, port, targets))
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
