"""Faults with real server processes: SIGKILL and SIGTERM mid-reply, Redis restarting, the
database going away. Each test starts its own processes (with the lifespan hooks on, as
`make run` / `make serve` do)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from core import closecodes
from core.ws import SLOW_SEND_SECONDS
from llm.models import AiReply
from testkit.proxy import TcpProxy
from testkit.servers import ServerProcess, free_port
from testkit.upstream import Behavior

from .conftest import LOCK_TTL_SECONDS as LOCK_TTL
from .conftest import end_server_connections, server_database_url
from .conftest import server_env as make_server_env
from .test_scaleout import Peer, call_api, make_room, start_session

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

# 300 chunks of 2 characters, 40 ms apart: a 12 s reply.
SLOW = Behavior(text="".join(f"{i % 10}." for i in range(300)), chunk_chars=2, delay=0.04)


@pytest.fixture
def server_env(upstream) -> dict[str, str]:
    import uuid

    prefix = f"{settings.CHANNEL_PREFIX}-faults-{uuid.uuid4().hex[:8]}"
    return make_server_env(upstream, prefix, HUB_REFRESH_SECONDS="5")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for proc in started:
        proc.stop()
    end_server_connections()


def start(
    servers: list[ServerProcess], env: dict[str, str], tmp_path: Path, name: str
) -> ServerProcess:
    # With the lifespan hooks (start-up recovery, graceful shutdown), as `make serve`.
    proc = ServerProcess(env=env, log_path=tmp_path / f"{name}.log", lifespan=True).start()
    servers.append(proc)
    return proc


async def wait_for(predicate: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def long_reply_on_a_new_server(
    upstream: Any, servers: list[ServerProcess], env: dict[str, str], tmp_path: Path
) -> tuple[ServerProcess, str, dict[str, str], Peer]:
    """Server "a", a session of alice's, and her socket once she has asked for a slow reply."""
    upstream.reset(SLOW)
    a = start(servers, env, tmp_path, "a")
    room, cookies = await make_room("alice")
    session = await start_session(a, cookies["alice"], room)
    peer = await Peer.open(a, f"/ws/llm/{session}/", cookies["alice"])
    await peer.send(type="chat_message", message="a long answer, please")
    return a, session, cookies, peer


@sync_to_async
def the_reply() -> AiReply:
    return AiReply.objects.select_related("reply").get()


async def test_sigkill_mid_reply_leaves_an_interrupted_reply_and_a_free_lock(
    upstream, server_env, servers, tmp_path
):
    a, session, cookies, peer = await long_reply_on_a_new_server(
        upstream, servers, server_env, tmp_path
    )
    seen: list[tuple[float, str]] = []
    text = ""
    while time.monotonic() - (seen[0][0] if seen else time.monotonic()) < 3.5:
        frame = await peer.recv()
        if frame["type"] == "ai_stream_delta":
            text += frame["delta"]
            seen.append((time.monotonic(), text))
    a.kill()
    killed_at = time.monotonic()
    await peer.close()

    b = start(servers, server_env, tmp_path, "b")

    async def interrupted() -> AiReply | None:
        reply = await the_reply()
        return reply if reply.status == "interrupted" else None

    reply = await wait_for(interrupted, LOCK_TTL + 10, "the reply to be closed as interrupted")
    saved = reply.reply.content
    assert reply.finish_reason == "interrupted"
    assert text.startswith(saved)
    # The checkpoint is at most 2 s older than the kill.
    two_seconds_before = max((t for at, t in seen if at <= killed_at - 2), key=len, default="")
    assert len(saved) >= len(two_seconds_before)
    # The session's lock is free: the next message is answered, by the new process.
    upstream.reset(Behavior(text="after the restart"))
    peer_b = await Peer.open(b, f"/ws/llm/{session}/", cookies["alice"])
    await peer_b.send(type="chat_message", message="are you back?")
    frames = await peer_b.until_ai_message()
    assert frames[-1]["message"] == "after the restart"
    await peer_b.close()


async def test_sigterm_finishes_or_saves_replies_and_closes_sockets_with_1012(
    upstream, server_env, servers, tmp_path
):
    a, _, _, peer = await long_reply_on_a_new_server(upstream, servers, server_env, tmp_path)
    await peer.recv_type("ai_stream_delta")
    assert a.proc is not None
    a.proc.send_signal(signal.SIGTERM)
    began = time.monotonic()
    assert await peer.close_code() == 1012
    await asyncio.to_thread(a.proc.wait, 12)
    assert time.monotonic() - began < 10
    reply = await the_reply()
    assert reply.status in ("done", "stopped")
    assert reply.reply is not None
    assert reply.reply.content
    assert SLOW.text.startswith(reply.reply.content)


# --- Redis restarting ------------------------------------------------------------------------
@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[dict[str, Any]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed")
    port = free_port()
    state: dict[str, Any] = {"port": port, "url": f"redis://127.0.0.1:{port}/0"}

    def run() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(  # noqa: S603 - the machine's redis-server, loopback only
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 10
        import redis

        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if redis.Redis(port=port).ping():
                    return proc
            time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    state["proc"] = run()
    state["restart"] = lambda: (
        state["proc"].kill(),
        state["proc"].wait(),
        state.__setitem__("proc", run()),
    )
    yield state
    state["proc"].kill()
    state["proc"].wait()


async def test_redis_restart_mid_conversation_recovers_without_a_server_restart(
    server_env, servers, tmp_path, private_redis
):
    env = {**server_env, "REDIS_URL": private_redis["url"]}
    a = start(servers, env, tmp_path, "a")
    b = start(servers, env, tmp_path, "b")
    room, cookies = await make_room("alice", "bob")
    path = f"/ws/chat/{room}/"
    alice = await Peer.open(a, path, cookies["alice"])
    bob = await Peer.open(b, path, cookies["bob"])
    await alice.send(type="chat_message", message="before")
    assert (await bob.recv_type("chat_message"))["message"] == "before"

    await asyncio.to_thread(private_redis["restart"])

    # Messages sent while the layer recovers are saved; whatever a socket missed it fetches
    # from history. Within a few seconds live delivery across processes works again.
    async def delivered() -> bool:
        for sock in (alice, bob):
            with contextlib.suppress(Exception):
                await sock.close()
        peers = (
            await Peer.open(a, path, cookies["alice"]),
            await Peer.open(b, path, cookies["bob"]),
        )
        try:
            await peers[0].send(type="chat_message", message="after")
            while True:
                frame = await peers[1].recv(1.5)
                if frame["type"] == "chat_message" and frame["message"] == "after":
                    return True
        except TimeoutError:
            return False
        finally:
            for sock in peers:
                await sock.close()

    assert await wait_for(delivered, 30, "live delivery after the Redis restart")
    status, history = await call_api(b, cookies["bob"], "GET", f"/api/chat/rooms/{room}/messages/")
    assert status == 200
    texts = [m["message"] for m in history["messages"]]
    assert texts[0] == "before"
    assert "after" in texts


# --- the database going away ------------------------------------------------------------------
@pytest.fixture
def db_proxy() -> Iterator[TcpProxy]:
    """A proxy in front of PostgreSQL: cutting it is the database going away."""
    proxy = TcpProxy(int(connection.settings_dict.get("PORT") or 5432)).start()
    yield proxy
    proxy.stop()


async def test_database_outage_answers_503_and_error_frames_then_recovers(
    server_env, servers, tmp_path, db_proxy
):
    room, cookies = await make_room("alice")
    dsn = dict(connection.settings_dict)
    dsn.update({"HOST": "127.0.0.1", "PORT": db_proxy.port})
    env = {**server_env, "DATABASE_URL": server_database_url(dsn)}
    a = start(servers, env, tmp_path, "a")
    path = f"/ws/chat/{room}/"
    alice = await Peer.open(a, path, cookies["alice"])
    await alice.send(type="chat_message", message="before")
    assert (await alice.recv_type("chat_message"))["message"] == "before"

    db_proxy.cut()
    status, body = await call_api(a, cookies["alice"], "GET", "/api/chat/my-rooms/")
    assert status == 503
    assert body["result"] == "error"
    assert body["code"] == "service_unavailable"
    await alice.send(type="chat_message", message="during")
    error = await alice.recv_type("error")
    assert error["code"] == "service_unavailable"

    db_proxy.restore()
    status, body = await call_api(a, cookies["alice"], "GET", "/api/chat/my-rooms/")
    assert status == 200
    await alice.send(type="chat_message", message="after")
    assert (await alice.recv_type("chat_message"))["message"] == "after"
    await alice.close()


# --- a member that stops reading ----------------------------------------------------------------
async def test_a_member_that_stops_reading_does_not_delay_the_others(server_env, servers, tmp_path):
    import socket as socketlib

    env = {**server_env, "CHAT_USER_RATE": "100000/minute"}
    a = start(servers, env, tmp_path, "a")
    room, cookies = await make_room("alice", "bob", "carol")
    path = f"/ws/chat/{room}/"
    # Carol completes the handshake on a tiny receive buffer and never reads again.
    stalled = socketlib.create_connection(("127.0.0.1", a.port))
    stalled.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_RCVBUF, 4096)
    stalled.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            f"Cookie: {settings.SESSION_COOKIE_NAME}={cookies['carol']}\r\n\r\n"
        ).encode()
    )
    assert b"101" in stalled.recv(1024)
    alice = await Peer.open(a, path, cookies["alice"])
    bob = await Peer.open(a, path, cookies["bob"])

    async def read_all(peer: Peer) -> None:
        with contextlib.suppress(Exception):
            async for _ in peer.conn:
                pass

    # Alice reads her own echoes, as a client does: Carol is the only member not reading.
    alice_reading = asyncio.create_task(read_all(alice))
    body = "x" * 3900
    received: list[int] = []
    for i in range(2600):
        await alice.send(type="chat_message", message=f"{i:05d}{body}")
        if i % 50 == 49:
            # Bob keeps up with the room while Carol's socket backs up: a server that waited
            # on Carol would hold every frame behind her full buffer, and Bob would wait here
            # until the test timed out, since Carol never reads.
            while not received or received[-1] != i:
                frame = await bob.recv(10)
                if frame["type"] == "chat_message":
                    received.append(int(frame["message"][:5]))
    assert received == list(range(2600))
    # Carol's outbox is past its mark and her writer has been stuck in one send: once that has
    # lasted SLOW_SEND_SECONDS, the next frame for her closes her socket as too slow (1013)
    # rather than wait for her. Her client then reads what was already on its way, and the
    # connection ends.
    await asyncio.sleep(SLOW_SEND_SECONDS)
    await alice.send(type="chat_message", message="the last straw")
    # Past the server's close handshake time-out, so that a socket it never closed times out.
    stalled.settimeout(30)
    stalled.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_RCVBUF, 1 << 20)
    drained = b""
    ended = False
    try:
        while chunk := stalled.recv(1 << 16):
            drained += chunk
        ended = True
    except ConnectionResetError:
        ended = True
    except TimeoutError:
        pass
    stalled.close()
    assert ended, f"the stalled socket was never closed by the server: {drained[-64:]!r}"
    # A close frame (0x88, unmasked from a server) says why, unless the server had to drop
    # the connection with its close still unsent behind the frames she never read: 1013, or
    # 1011 if the server's keepalive, whose pings she never answered, ended her first.
    close = drained[drained.rfind(b"\x88") :]
    if len(close) >= 4 and len(close) == 2 + close[1]:  # the last frame is a close frame
        assert int.from_bytes(close[2:4], "big") in (closecodes.TRY_AGAIN, 1011), close
    await alice.close()
    await alice_reading
    await bob.close()
