"""idle: 5,000 signed-in room sockets on one process (PostgreSQL + Redis): resident memory per
socket, and whether connecting and disconnecting leaves memory behind. Then, on a fresh process,
the same 5,000 users each with a `/ws/me/` socket (one members' group per room, the per-room
counts each keeps): at most 10 KiB per socket more than a room socket (issue 14).

RSS is read from /proc/<pid>/statm. The baseline is taken after a warm-up of a few hundred
connections, so code loaded on first use is not charged to the sockets. Churn runs in rounds
(3 of 500 cycles in quick mode, 5 of 1,000 in the full run); each round's growth is reported,
and the target applies to the last. `python -m bench.churn_census` shows what the rounds do to
live Python objects.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import ClientConnection

from bench import client, seed
from bench.context import Bench
from testkit.servers import ServerProcess

SOCKETS = 5000
PER_ROOM = 5
CHURN = 1000
KIB_PER_SOCKET_TARGET = 50.0
CHURN_GROWTH_TARGET_KIB = 1024.0
ME_EXTRA_KIB_TARGET = 10.0


async def _settle(seconds: float = 2.0) -> None:
    """Let the server finish the work the last sockets left behind."""
    await asyncio.sleep(seconds)


async def churn(targets: list[tuple[str, str | None]], cycles: int) -> None:
    """Connect and disconnect `cycles` times, 20 at a time."""
    gate = asyncio.Semaphore(20)

    async def one(i: int) -> None:
        async with gate:
            conn = await client.open_socket(*targets[i % len(targets)])
            await conn.close()

    await asyncio.gather(*(one(i) for i in range(cycles)))


async def _open_all(
    bench: Bench, config: str, server: ServerProcess, targets: list[tuple[str, str | None]]
) -> tuple[list[ClientConnection], float, int]:
    """Open a socket per target on a settled server: the sockets, KiB per socket, the RSS."""
    rss_empty = server.rss_bytes()
    conns = await client.open_many(targets, concurrency=50)
    await _settle()
    rss_full = server.rss_bytes()
    bench.add("idle", config, "sockets open", float(len(conns)))
    bench.add("idle", config, "RSS, no sockets", rss_empty / 2**20, "MiB")
    bench.add("idle", config, f"RSS, {len(conns)} sockets", rss_full / 2**20, "MiB")
    return conns, (rss_full - rss_empty) / len(conns) / 1024, rss_full


async def run(bench: Bench) -> None:
    print(f"idle: {SOCKETS} sockets", flush=True)
    config = f"{SOCKETS} sockets, 1 process"
    rooms = await asyncio.to_thread(seed.make_rooms, bench.prefix(), SOCKETS // PER_ROOM, PER_ROOM)
    with bench.servers(1, redis=True, name="idle") as procs:
        server = procs[0]
        targets: list[tuple[str, str | None]] = [
            (f"{server.ws_url}/ws/chat/{room.room_id}/", member.cookie)
            for room in rooms
            for member in room.members
        ]
        # Extra sockets of the first members of the rooms, for the churn.
        spare = targets[:: PER_ROOM * 2]
        await churn(spare, 300)
        await _settle()
        conns, per_socket, rss_full = await _open_all(bench, config, server, targets)
        bench.add(
            "idle",
            config,
            "memory per socket",
            per_socket,
            "KiB",
            at_most=KIB_PER_SOCKET_TARGET,
        )
        # Rounds of churn: the allocator's high-water mark settles over the first rounds, so
        # the target is on the last one (a leak would grow every round alike).
        cycles = CHURN // 2 if bench.quick else CHURN
        rounds = 3 if bench.quick else 5
        previous = rss_full
        for n in range(1, rounds + 1):
            await churn(spare, cycles)
            await _settle()
            rss = server.rss_bytes()
            growth = (rss - previous) / 1024
            previous = rss
            last = n == rounds
            bench.add(
                "idle",
                config,
                f"RSS growth, round {n} of {cycles} cycles",
                growth,
                "KiB",
                at_most=CHURN_GROWTH_TARGET_KIB if last else None,
            )
        await client.close_all(conns)
    await _me_sockets(bench, rooms, per_socket)


async def _me_sockets(bench: Bench, rooms: list[seed.Room], room_kib: float) -> None:
    """The users of the rooms above, each with a /ws/me/ socket, on a fresh process."""
    config = f"{SOCKETS} /ws/me/ sockets, 1 process"
    with bench.servers(1, redis=True, name="idle-me") as procs:
        server = procs[0]
        targets: list[tuple[str, str | None]] = [
            (f"{server.ws_url}/ws/me/", member.cookie) for room in rooms for member in room.members
        ]
        # Warm-up with the first rooms' members (code loaded on first use is not a socket's).
        await churn(targets[: PER_ROOM * 40], 300)
        await _settle()
        conns, per_socket, _ = await _open_all(bench, config, server, targets)
        bench.add("idle", config, "memory per socket", per_socket, "KiB")
        bench.add(
            "idle",
            config,
            "more than a room socket",
            per_socket - room_kib,
            "KiB",
            at_most=ME_EXTRA_KIB_TARGET,
        )
        await client.close_all(conns)
