"""A database or Redis outage answers 503 / an error frame instead of a crash, and service
comes back with the database. The database goes away for real: a TCP proxy between this
process and PostgreSQL is cut (so every query, the session lookup included, fails as it would);
Redis is unreachable at the address the rate limiter is given."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from redis.exceptions import ConnectionError as RedisConnectionError

from chat.services import room_create
from core import ratelimit
from core.hub import Hub
from testkit.proxy import TcpProxy
from testkit.servers import free_port

pytestmark = pytest.mark.django_db

UNAVAILABLE = {
    "result": "error",
    "code": "service_unavailable",
    "message": "The database is unavailable; try again shortly.",
}


@pytest.fixture
def database(transactional_db: None) -> Iterator[TcpProxy]:
    """This process's connections to PostgreSQL, through a proxy that the test cuts."""
    from django.db import connection, connections

    settings_dict = connection.settings_dict  # shared by every thread's connection
    saved = {key: settings_dict[key] for key in ("HOST", "PORT")}
    proxy = TcpProxy(int(saved["PORT"] or 5432), saved["HOST"] or "127.0.0.1").start()
    connections.close_all()
    settings_dict.update(HOST="127.0.0.1", PORT=proxy.port)
    try:
        yield proxy
    finally:
        proxy.restore()
        connections.close_all()
        settings_dict.update(saved)
        proxy.stop()


@pytest.mark.postgres
def test_api_answers_503_while_the_database_is_down(client_for, alice, database):
    # (Recovery needs the request cycle's close_old_connections, which Django's test client
    # leaves out: tests/multiprocess/test_faults.py checks it on a real server.)
    client = client_for(alice)
    assert client.get("/api/chat/my-rooms/").status_code == 200
    database.cut()
    r = client.get("/api/chat/my-rooms/")
    assert r.status_code == 503
    assert r.json() == UNAVAILABLE


def test_api_answers_503_while_redis_is_unreachable(anon, alice, settings):
    # Nothing listens on a port just found free: the rate limiter's Redis is down.
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    ratelimit._limiter.cache_clear()
    try:
        with pytest.raises(RedisConnectionError):
            ratelimit.check("probe", "x", "5/minute")
        r = anon.post_json("/api/auth/login/", {"username": "alice", "password": "x"})
    finally:
        ratelimit._limiter.cache_clear()
    assert r.status_code == 503
    assert r.json()["code"] == "service_unavailable"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
async def test_socket_gets_an_error_frame_while_the_database_is_down_and_stays_open(
    client_for, ws, alice, settings, database
):
    settings.LLM_PROVIDER = "echo"
    # The handlers' queries on Django's one sync thread (as on SQLite), whose connection is
    # closed after every call, so that each of them goes through the proxy. On the pool of
    # database threads a connection opened by an earlier test can outlive the switch to the
    # proxy in this process; tests/multiprocess/test_faults.py cuts the pool's on a real server.
    settings.DB_THREAD_SENSITIVE = True
    room = await sync_to_async(room_create)(owner=alice, name="r")
    c = await sync_to_async(client_for)(alice)
    r = await sync_to_async(c.post_json)("/api/llm/start_session/", {"room_uuid": str(room.pk)})
    sock = await ws(f"/ws/llm/{r.json()['session_id']}/", alice)
    await sock.recv_type("ai_joined")
    await sock.recv_type("session_viewers")
    database.cut()
    await sock.send_json_to({"type": "chat_message", "message": "lost?"})
    err = await sock.recv()
    assert err["type"] == "error"
    assert err["code"] == "service_unavailable"
    database.restore()
    await sock.send_json_to({"type": "chat_message", "message": "back"})
    assert (await sock.recv_type("chat_message"))["message"] == "back"
    await sock.recv_type("ai_stream_end")


class FlakyLayer:
    """A channel layer whose receive fails a few times, as while Redis restarts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.queue: asyncio.Queue[dict] = asyncio.Queue()
        self.joined: list[str] = []

    async def new_channel(self) -> str:
        return "hub!1"

    async def group_add(self, group: str, channel: str) -> None:
        self.joined.append(group)

    async def group_discard(self, group: str, channel: str) -> None:
        pass

    async def receive(self, channel: str) -> dict:
        if self.failures:
            self.failures -= 1
            await asyncio.sleep(0.01)
            raise RedisConnectionError("down")
        return await self.queue.get()


class Member:
    user_id = 1

    def __init__(self) -> None:
        self.frames: list[str] = []

    def deliver(self, text, meta=None):
        self.frames.append(text)

    def control(self, action, params):
        pass


async def test_hub_rejoins_and_asks_clients_to_resync_after_an_outage():
    layer = FlakyLayer(failures=2)
    hub = Hub(layer)  # type: ignore[arg-type]
    member = Member()
    await hub.join("room.x", member)
    assert layer.joined == ["room.x"]
    await layer.queue.put(
        {"type": "hub.frame", "group": "room.x", "frame": {"type": "chat_message"}}
    )
    for _ in range(200):
        if len(member.frames) == 2:
            break
        await asyncio.sleep(0.01)
    await hub.close()
    # Re-joined once the layer answered again, then told the socket to refetch history.
    assert layer.joined == ["room.x", "room.x"]
    assert member.frames == [
        '{"type":"resync","reason":"channel_layer_recovered"}',
        '{"type":"chat_message"}',
    ]
