"""A database or Redis outage answers 503 / an error frame instead of a crash."""

from __future__ import annotations

import asyncio

import pytest
from django.db import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from chat.services import room_create
from core.hub import Hub

pytestmark = pytest.mark.django_db


def test_api_answers_503_when_the_database_is_down(client_for, alice, monkeypatch):
    from chat import selectors

    def down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(selectors, "room_views", down)
    r = client_for(alice).get("/api/chat/my-rooms/")
    assert r.status_code == 503
    assert r.json() == {
        "result": "error",
        "code": "service_unavailable",
        "message": "The database is unavailable; try again shortly.",
    }


def test_api_answers_503_when_redis_is_down(anon, alice, monkeypatch):
    from core import ratelimit

    def down(*args, **kwargs):
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(ratelimit, "check", down)
    r = anon.post_json("/api/auth/login/", {"username": "alice", "password": "x"})
    assert r.status_code == 503
    assert r.json()["code"] == "service_unavailable"


@pytest.mark.django_db(transaction=True)
async def test_socket_gets_an_error_frame_and_stays_open(
    client_for, ws, alice, monkeypatch, settings
):
    from asgiref.sync import sync_to_async

    from llm import services

    settings.LLM_PROVIDER = "echo"
    room = await sync_to_async(room_create)(owner=alice, name="r")
    c = await sync_to_async(client_for)(alice)
    r = await sync_to_async(c.post_json)("/api/llm/start_session/", {"room_uuid": str(room.pk)})
    sock = await ws(f"/ws/llm/{r.json()['session_id']}/", alice)
    await sock.recv_type("ai_joined")
    await sock.recv_type("session_viewers")
    real = services.message_post

    def down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(services, "message_post", down)
    await sock.send_json_to({"type": "chat_message", "message": "lost?"})
    err = await sock.recv()
    assert err["type"] == "error"
    assert err["code"] == "service_unavailable"
    monkeypatch.setattr(services, "message_post", real)
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
