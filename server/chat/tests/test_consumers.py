"""The room-chat socket (SPEC 4) on the real ASGI stack."""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from conftest import session_cookie

from chat.models import Message
from chat.services import room_create, room_remove_participant

pytestmark = pytest.mark.django_db(transaction=True)


def path(room):
    return f"/ws/chat/{room.pk}/"


async def count(**filters):
    return await sync_to_async(Message.objects.filter(**filters).count)()


async def test_message_reaches_everyone_with_is_self_per_recipient(ws, room, alice, bob):
    a = await ws(path(room), alice)
    a2 = await ws(path(room), alice)
    b = await ws(path(room), bob)
    await a.send_json_to({"type": "chat_message", "message": "  hello  "})
    mine, mine2, theirs = await a.recv(), await a2.recv(), await b.recv()
    assert mine["type"] == theirs["type"] == "chat_message"
    assert mine["message"] == theirs["message"] == "hello"
    assert mine["username"] == "alice"
    assert mine["is_self"] is True
    assert mine2["is_self"] is True
    assert theirs["is_self"] is False
    assert mine["is_ai"] is theirs["is_ai"] is False
    assert mine["message_id"] == theirs["message_id"]
    assert "+00:00" in mine["timestamp"]
    stored = await sync_to_async(Message.objects.get)(pk=mine["message_id"])
    assert stored.content == "hello"


async def test_twenty_rapid_messages_arrive_in_order(ws, room, alice, bob):
    a = await ws(path(room), alice)
    b = await ws(path(room), bob)
    for i in range(20):
        await a.send_json_to({"type": "chat_message", "message": f"m{i}"})
    got = [(await b.recv())["message"] for _ in range(20)]
    assert got == [f"m{i}" for i in range(20)]
    ids = [(await a.recv())["message_id"] for _ in range(20)]
    assert ids == sorted(ids)


async def test_client_id_makes_a_retry_idempotent(ws, room, alice, bob):
    a = await ws(path(room), alice)
    b = await ws(path(room), bob)
    frame = {"type": "chat_message", "message": "once", "client_id": "abc-1"}
    await a.send_json_to(frame)
    first = await a.recv()
    assert first["client_id"] == "abc-1"
    other = await b.recv()
    assert "client_id" not in other
    # The retry, as after a dropped connection, on a new socket.
    a2 = await ws(path(room), alice)
    await a2.send_json_to(frame)
    again = await a2.recv()
    assert again["message_id"] == first["message_id"]
    assert again["client_id"] == "abc-1"
    # Bob's next frame is the next message, not the retry broadcast a second time.
    await a2.send_json_to({"type": "chat_message", "message": "after the retry"})
    assert (await b.recv())["message"] == "after the retry"
    assert await count(content="once") == 1


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('"text"', "invalid_json"),
        (json.dumps({"message": "no type"}), "unknown_type"),
        (json.dumps({"type": "shout", "message": "x"}), "unknown_type"),
        (json.dumps({"type": "ai_joined"}), "unknown_type"),
        (json.dumps({"type": "chat_message", "message": "   "}), "empty_message"),
        (json.dumps({"type": "chat_message"}), "empty_message"),
        (json.dumps({"type": "chat_message", "message": 42}), "empty_message"),
        (json.dumps({"type": "chat_message", "message": "x" * 4001}), "message_too_long"),
        (
            json.dumps({"type": "chat_message", "message": "x", "client_id": "c" * 65}),
            "validation_error",
        ),
    ],
)
async def test_error_frames_keep_the_socket_open_and_save_nothing(ws, room, alice, raw, code):
    a = await ws(path(room), alice)
    await a.send_to(text_data=raw)
    frame = await a.recv()
    assert frame["type"] == "error"
    assert frame["code"] == code
    assert frame["message"]
    assert await count() == 0
    await a.send_json_to({"type": "chat_message", "message": "still here"})
    assert (await a.recv())["message"] == "still here"


async def test_message_of_exactly_max_chars_passes(ws, room, alice, settings):
    settings.MAX_MESSAGE_CHARS = 10
    a = await ws(path(room), alice)
    await a.send_json_to({"type": "chat_message", "message": "x" * 10})
    assert (await a.recv())["type"] == "chat_message"
    await a.send_json_to({"type": "chat_message", "message": "x" * 11})
    assert (await a.recv())["code"] == "message_too_long"


async def test_binary_frame_is_an_error(ws, room, alice):
    a = await ws(path(room), alice)
    await a.send_to(bytes_data=b"\x00\x01")
    assert (await a.recv())["code"] == "invalid_json"


async def test_oversized_frame_closes_with_1009(ws, room, alice):
    a = await ws(path(room), alice)
    await a.send_to(text_data="x" * (64 * 1024 + 1))
    assert await a.closed_with() == 1009


async def test_anonymous_is_closed_with_4401(ws, room):
    s = await ws(path(room), None)
    assert await s.closed_with() == 4401


async def test_non_member_is_closed_with_4403(ws, room, carol):
    s = await ws(path(room), carol)
    assert await s.closed_with() == 4403


async def test_missing_room_is_closed_with_4404(ws, alice):
    s = await ws(f"/ws/chat/{uuid.uuid4()}/", alice)
    assert await s.closed_with() == 4404


async def test_foreign_origin_is_refused(ws, room, alice):
    s = await ws(path(room), alice, origin="https://evil.example")
    assert await s.closed_with() == 4403


async def test_own_and_configured_origins_pass(ws, room, alice, settings):
    settings.CORS_ALLOWED_ORIGINS = ["http://localhost:5173"]
    for origin in ("http://testserver", "http://localhost:5173"):
        s = await ws(path(room), alice, origin=origin)
        await s.send_json_to({"type": "chat_message", "message": origin})
        assert (await s.recv_type("chat_message"))["message"] == origin


async def test_invalid_session_cookie_is_4401(ws, room):
    s = await ws(path(room), None, cookie="forged")
    assert await s.closed_with() == 4401


async def test_removal_closes_the_removed_users_sockets_at_once(ws, room, alice, bob):
    a = await ws(path(room), alice)
    b = await ws(path(room), bob)
    await sync_to_async(room_remove_participant)(room_id=room.pk, actor=alice, username="bob")
    assert await b.closed_with() == 4403
    # Alice is untouched.
    await a.send_json_to({"type": "chat_message", "message": "still open"})
    assert (await a.recv())["message"] == "still open"


async def test_sign_out_closes_the_users_sockets(ws, room, bob):
    cookie = await sync_to_async(session_cookie)(bob)
    b = await ws(path(room), bob, cookie=cookie)

    def logout():
        from django.test import Client

        c = Client()
        c.cookies["sessionid"] = cookie
        assert c.post("/api/auth/logout/", content_type="application/json").status_code == 200

    await sync_to_async(logout)()
    assert await b.closed_with() == 4401


async def test_room_chat_rate_limit(ws, room, alice, settings):
    settings.CHAT_USER_RATE = "3/minute"
    a = await ws(path(room), alice)
    for i in range(3):
        await a.send_json_to({"type": "chat_message", "message": f"m{i}"})
        assert (await a.recv())["type"] == "chat_message"
    await a.send_json_to({"type": "chat_message", "message": "one too many"})
    err = await a.recv()
    assert err["type"] == "error"
    assert err["code"] == "rate_limited"
    assert err["retry_after"] >= 1
    assert await count(content="one too many") == 0


@pytest.mark.redis
async def test_two_clients_exchange_messages_over_redis(ws, room, alice, bob, settings):
    from channels.layers import get_channel_layer

    assert "Redis" in type(get_channel_layer()).__name__
    a = await ws(path(room), alice)
    b = await ws(path(room), bob)
    await a.send_json_to({"type": "chat_message", "message": "ping"})
    ping = await b.recv()
    assert (ping["message"], ping["username"], ping["is_self"]) == ("ping", "alice", False)
    await b.send_json_to({"type": "chat_message", "message": "pong"})
    # Alice's own echo comes first; the next frame must be bob's answer, not a repeat of it.
    echo = await a.recv()
    assert (echo["message"], echo["is_self"]) == ("ping", True)
    pong = await a.recv()
    assert (pong["message"], pong["username"], pong["is_self"]) == ("pong", "bob", False)


async def test_open_sockets_per_user_are_capped(ws, room, alice, bob, settings):
    settings.MAX_SOCKETS_PER_USER = 2
    first = await ws(path(room), alice)
    await ws(path(room), alice)
    third = await ws(path(room), alice)
    assert await third.closed_with() == 4429
    # Others are not affected, and a closed socket frees its place.
    other = await ws(path(room), bob)
    await other.send_json_to({"type": "chat_message", "message": "fine"})
    assert (await other.recv())["message"] == "fine"
    await first.disconnect()
    again = await ws(path(room), alice)
    await again.send_json_to({"type": "chat_message", "message": "room again"})
    assert (await again.recv_type("chat_message"))["message"] == "room again"


async def test_a_client_id_reused_in_another_room_is_an_error_not_a_silent_drop(ws, room, alice):
    other = await sync_to_async(room_create)(owner=alice, name="other")
    a = await ws(path(room), alice)
    await a.send_json_to({"type": "chat_message", "message": "here", "client_id": "same"})
    await a.recv()
    b = await ws(path(other), alice)
    await b.send_json_to({"type": "chat_message", "message": "there", "client_id": "same"})
    err = await b.recv()
    assert err["type"] == "error"
    assert err["code"] == "validation_error"
    assert "client_id" in err["message"]
    assert await count(content="there") == 0
