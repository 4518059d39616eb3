"""Hostile input (issue 7): whatever a client sends, over a socket or as an HTTP body, it gets
a handled answer in the protocol's own shape, the connection stays usable, and nothing is
saved that should not be.

The room-chat socket is swept with hypothesis here; the AI-session socket in
llm/tests/test_hostile_frames.py, with the same frames (core/tests/hostile.py).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from conftest import asgi_request, session_cookie
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from chat.models import Message
from core.tests.hostile import (
    MAX_MESSAGE_CHARS,
    SWEEP,
    answers_until,
    client_ids_of,
    frames,
    interleaves,
    plan,
    send,
)

pytestmark = pytest.mark.django_db
# Sockets run on other threads than the test, so their tests need committed data.
sockets = pytest.mark.django_db(transaction=True)

CHAT_TYPES = frozenset({"chat_message", "typing", "stop_generation", "regenerate", "cancel_reply"})


@pytest.fixture(autouse=True)
def _no_chat_rate_limit(settings):
    # The sweep sends far more messages than a person would; the limit has tests of its own.
    settings.CHAT_USER_RATE = "100000/minute"


@sockets
@pytest.mark.slow
@SWEEP
@given(sent=st.lists(frames(CHAT_TYPES), min_size=1, max_size=6))
async def test_any_frames_on_the_chat_socket(ws, room, alice, bob, sent):
    known = await sync_to_async(client_ids_of)(alice)
    before = await sync_to_async(Message.objects.filter(room=room).count)()
    direct, layer, saved = plan(sent, CHAT_TYPES, known)
    sock = await ws(f"/ws/chat/{room.pk}/", alice)
    for frame in sent:
        await send(sock, frame)
    ping = f"ping {uuid.uuid4()}"
    await sock.send_json_to({"type": "chat_message", "message": ping})
    try:
        got = await answers_until(sock, ping)
        assert interleaves(got, direct, [*layer, ("echo", ping)]), (got, direct, layer)
    finally:
        await sock.disconnect()
    after = await sync_to_async(Message.objects.filter(room=room).count)()
    assert after - before == saved + 1


@sockets
async def test_message_length_is_counted_in_characters_after_trimming(ws, room, alice):
    sock = await ws(f"/ws/chat/{room.pk}/", alice)
    cases = [
        ("x" * MAX_MESSAGE_CHARS, "chat_message"),
        ("x" * (MAX_MESSAGE_CHARS + 1), "message_too_long"),
        # Four UTF-8 bytes each, one character each.
        ("\U0001f600" * MAX_MESSAGE_CHARS, "chat_message"),
        ("  " + "한" * MAX_MESSAGE_CHARS + "\n\t", "chat_message"),
        # A combining mark is a character of its own.
        ("e\u0301" * (MAX_MESSAGE_CHARS // 2) + "e", "message_too_long"),
        ("\u202e\u200f" + "a" * (MAX_MESSAGE_CHARS - 2), "chat_message"),
    ]
    for text, kind in cases:
        await sock.send_json_to({"type": "chat_message", "message": text})
        frame = await sock.recv()
        assert frame.get("code", frame["type"]) == kind, (len(text), frame)
        if kind == "chat_message":
            # Stored and sent back exactly as sent, bidi controls and all, less the trimming.
            assert frame["message"] == text.strip()
    assert await sync_to_async(Message.objects.filter(room=room).count)() == 4


@sockets
@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "chat_message", "message": "a\\u0000b"}',
        '{"type": "chat_message", "message": "a\\ud800b"}',
        '{"type": "chat_message", "message": "\\udfff"}',
        '{"type": "chat_message", "message": "ok", "client_id": "c\\u0000"}',
        '{"type": "chat_message", "message": "ok", "client_id": "\\ud83d"}',
    ],
)
async def test_text_no_database_can_store_is_refused(ws, room, alice, raw):
    # NUL breaks PostgreSQL and a lone surrogate breaks every database: both used to reach
    # the save and fail there.
    sock = await ws(f"/ws/chat/{room.pk}/", alice)
    await sock.send_to(text_data=raw)
    frame = await sock.recv()
    assert frame["type"] == "error"
    assert frame["code"] == "validation_error"
    await sock.send_json_to({"type": "chat_message", "message": "still here"})
    assert (await sock.recv())["message"] == "still here"
    assert await sync_to_async(Message.objects.filter(room=room).count)() == 1


@sockets
@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe\xfd",
        b'{"type": "chat_message", "message": "\xc3\x28"}',
        b'{"type": "chat_message", "message": "\xed\xa0\x80"}',
        json.dumps({"type": "chat_message", "message": "valid JSON, but binary"}).encode(),
    ],
)
async def test_binary_frames_are_invalid_json_and_the_socket_stays_usable(ws, room, alice, data):
    sock = await ws(f"/ws/chat/{room.pk}/", alice)
    await sock.send_to(bytes_data=data)
    frame = await sock.recv()
    assert (frame["type"], frame["code"]) == ("error", "invalid_json")
    await sock.send_json_to({"type": "chat_message", "message": "still here"})
    assert (await sock.recv())["message"] == "still here"
    assert await sync_to_async(Message.objects.filter(room=room).count)() == 1


# --- HTTP bodies ---------------------------------------------------------------------------


def _body_operations() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, body schema) of every operation that takes a JSON body, from the
    OpenAPI document, so that a new endpoint is covered without editing this file."""
    doc = Client(HTTP_HOST="localhost").get("/api/openapi.json").json()
    schemas = doc["components"]["schemas"]
    found = []
    for template, operations in doc["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if body is None:
                continue
            ref = body["content"]["application/json"]["schema"]["$ref"]
            path = template
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    value = "1" if parameter["schema"].get("type") == "integer" else uuid.uuid4()
                    path = path.replace("{" + parameter["name"] + "}", str(value))
            found.append((method.upper(), path, schemas[ref.rsplit("/", 1)[1]]))
    assert found, "the API has no JSON bodies? the document could not be read"
    return found


def _post(client: Client, method: str, path: str, data: bytes | str) -> Any:
    client.raise_request_exception = False
    return client.generic(method, path, data=data, content_type="application/json")


def _assert_envelope(response: Any, status: int, code: str) -> None:
    assert response["Content-Type"].startswith("application/json"), response
    body = response.json()
    assert (response.status_code, body["result"], body["code"]) == (status, "error", code), body
    assert body["message"]


def _strings_with(schema: dict[str, Any], text: str) -> str:
    return json.dumps(dict.fromkeys(schema.get("required", schema.get("properties", {})), text))


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param("[" * 30_000 + "]" * 30_000, 400, "invalid_json", id="nested-past-parser"),
        pytest.param('{"a":' * 5_000 + "1" + "}" * 5_000, 400, "invalid_json", id="nested-objects"),
        pytest.param("[" * 500 + "]" * 500, 400, "validation_error", id="nested-but-parsed"),
        pytest.param(b'{"name": "\xff\xfe"}', 400, "invalid_json", id="invalid-utf8"),
        pytest.param(b"\xed\xa0\x80", 400, "invalid_json", id="utf8-encoded-surrogate"),
        pytest.param("null", 400, "validation_error", id="null"),
        pytest.param("[1, 2]", 400, "validation_error", id="array"),
        pytest.param('"text"', 400, "validation_error", id="string"),
        pytest.param("", 400, "validation_error", id="empty"),
    ],
)
def test_hostile_bodies_get_an_envelope_on_every_json_endpoint(
    client_for, alice, body, status, code
):
    client = client_for(alice)
    for method, path, _schema in _body_operations():
        response = _post(client, method, path, body)
        _assert_envelope(response, status, code)


@sockets
@pytest.mark.parametrize(
    "body",
    [
        pytest.param("[" * 100_000 + "]" * 100_000, id="nested-and-huge"),
        pytest.param(json.dumps({"pad": "x" * 70_000}), id="huge"),
    ],
)
async def test_bodies_over_the_limit_are_a_413_on_every_json_endpoint(alice, body):
    """Through the whole ASGI application, where the one size check is (core.middleware)."""
    cookie = await sync_to_async(session_cookie)(alice)
    for method, path, _schema in await sync_to_async(_body_operations)():
        status, answer = await asgi_request(method, path, body.encode(), cookie=cookie)
        assert (status, answer["result"], answer["code"]) == (413, "error", "too_large"), path


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udfff"])
def test_text_no_database_can_store_is_a_400_on_every_json_endpoint(client_for, alice, text):
    # Every string property set to the bad text: with NUL this was a 500 on PostgreSQL.
    client = client_for(alice)
    for method, path, schema in _body_operations():
        response = _post(client, method, path, _strings_with(schema, text))
        _assert_envelope(response, 400, "validation_error")


@pytest.mark.parametrize(
    ("query", "status"),
    [
        pytest.param("since=2024", 400, id="bare-number-was-unix-time"),
        pytest.param("until=1e3", 400, id="float"),
        pytest.param("since=0546-10-30T12:26:09-22:18&until=0928-01-25", 200, id="offset-22h"),
        pytest.param("since=0001-01-01T00:00:00%2B01:00", 400, id="before-year-1-in-utc"),
        pytest.param("until=9999-12-31T23:59:59-01:00", 400, id="after-year-9999-in-utc"),
        pytest.param("since=2024-05-01&until=2024-06-01T00:00:00%2B05:30", 200, id="ordinary"),
    ],
)
def test_usage_period_bounds_are_dates_or_a_400(client_for, alice, query, status):
    # Offsets past 15:59 were a 500 on PostgreSQL; bare numbers silently meant 1970.
    response = client_for(alice).get(f"/api/llm/usage/?{query}")
    assert response.status_code == status, response.content
    if status == 400:
        assert response.json()["code"] == "validation_error"


@sockets
async def test_a_chunked_body_is_held_to_the_same_limit(alice):
    """Over ASGI, a body without Content-Length (chunked) used to bypass the 64 KiB limit."""
    cookie = await sync_to_async(session_cookie)(alice)

    async def call(body: bytes) -> tuple[int, dict[str, Any]]:
        return await asgi_request("POST", "/api/chat/rooms/", body, cookie=cookie, chunked=True)

    status, answer = await call(json.dumps({"name": "big", "pad": "x" * 200_000}).encode())
    assert (status, answer["code"]) == (413, "too_large")
    assert await sync_to_async(Message.objects.count)() == 0
    from chat.models import ChatRoom

    assert not await sync_to_async(ChatRoom.objects.filter(name="big").exists)()
    # A chunked body under the limit still works.
    status, answer = await call(json.dumps({"name": "small"}).encode())
    assert (status, answer["result"]) == (201, "success")
