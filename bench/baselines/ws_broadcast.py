"""A bare `websockets` broadcast server, the ceiling: every text frame a client sends goes, as
is, to every client connected on the same path (its "room"). No framework, no JSON.

    python -m bench.baselines.ws_broadcast --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from websockets.asyncio.server import ServerConnection, broadcast, serve

rooms: dict[str, set[ServerConnection]] = {}


async def handler(conn: ServerConnection) -> None:
    room = rooms.setdefault(conn.request.path if conn.request else "/", set())
    room.add(conn)
    try:
        async for message in conn:
            broadcast(room, message)
    finally:
        room.discard(conn)


async def main(port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # No compression, as the other servers of the benchmark run (`make serve`'s flags).
    async with serve(
        handler, "127.0.0.1", port, max_size=65536, ping_interval=None, compression=None
    ):
        await stop.wait()


if __name__ == "__main__":
    import uvloop

    parser = argparse.ArgumentParser(prog="python -m bench.baselines.ws_broadcast")
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(main(parser.parse_args().port))
