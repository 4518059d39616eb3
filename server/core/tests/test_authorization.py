"""Ids cannot be probed (SPEC 3, issue 7): every operation of the OpenAPI document that takes
an id, in its path, query or body, is called by a signed-in user who may not see the object,
and answers exactly as it does for an id that does not exist; anonymous callers get 401.

The operations come from /api/openapi.json, so a new endpoint is swept without editing this
file; a parameter the sweep does not know how to fill fails the test instead of being skipped.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from chat.models import ChatRoom, Message
from chat.services import room_create
from llm.models import AiChatSession

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    path_params: tuple[str, ...]
    query_ids: tuple[str, ...]
    body: dict[str, Any] | None
    secured: bool

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def _is_id(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(option.get("format") == "uuid" for option in options)


def operations() -> list[Operation]:
    doc = Client(HTTP_HOST="localhost").get("/api/openapi.json").json()
    schemas = doc["components"]["schemas"]
    found = []
    for template, methods in doc["paths"].items():
        for method, spec in methods.items():
            params = spec.get("parameters", [])
            body = None
            if "requestBody" in spec:
                ref = spec["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                body = schemas[ref.rsplit("/", 1)[1]]
            found.append(
                Operation(
                    method=method.upper(),
                    template=template,
                    path_params=tuple(p["name"] for p in params if p["in"] == "path"),
                    query_ids=tuple(
                        p["name"]
                        for p in params
                        if p["in"] == "query" and (_is_id(p["schema"]) or p.get("required"))
                    ),
                    body=body,
                    secured=bool(spec.get("security")),
                )
            )
    return found


def _takes_an_id(op: Operation) -> bool:
    body_ids = op.body is not None and any(
        _is_id(prop) for prop in op.body.get("properties", {}).values()
    )
    return bool(op.path_params or op.query_ids or body_ids)


@dataclass(frozen=True)
class Ids:
    room: str
    session: str
    message: str = str(2**62 - 1)


# How to fill each parameter: an id from `Ids`, or a fixed value that would be valid for a
# member. A parameter missing here fails the sweep: add it, don't skip it.
PATH = {"room_id": "room", "session_id": "session", "username": "=bob", "message_id": "message"}
QUERY = {"room_uuid": "room", "session_id": "session", "q": "=secret"}
BODY = {
    "room_uuid": "room",
    "username": "=bob",
    "name": "=a room",
    "password": "=x",
    "monthly_usd": "=5",
    "message_id": "=1",
    "message": "=changed",
}


def _fill(table: dict[str, str], name: str, ids: Ids, op: Operation) -> str:
    assert name in table, f"{op}: the sweep does not know how to fill {name!r}; add it"
    rule = table[name]
    return rule[1:] if rule.startswith("=") else str(getattr(ids, rule))


def call(client: Client, op: Operation, ids: Ids) -> tuple[int, Any]:
    path = op.template
    for name in op.path_params:
        path = path.replace("{" + name + "}", _fill(PATH, name, ids, op))
    query = {name: _fill(QUERY, name, ids, op) for name in op.query_ids}
    data = None
    if op.body is not None:
        required = op.body.get("required", [])
        data = json.dumps({name: _fill(BODY, name, ids, op) for name in required})
    client.raise_request_exception = False
    if query:
        path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    response = client.generic(
        op.method, path, data=data or "", content_type="application/json" if data else None
    )
    assert response["Content-Type"].startswith("application/json"), (str(op), response)
    body = response.json()
    # A period that ends "now" (the usage report) differs between two calls by the clock alone.
    body.pop("until", None)
    return response.status_code, body


@pytest.fixture
def hidden(alice, bob) -> Ids:
    """alice's room with bob in it, an AI session, and messages in both."""
    room = room_create(owner=alice, name="secret plans")
    room.participants.add(bob)
    session = AiChatSession.objects.create(room=room, created_by=alice, model="echo")
    said = Message.objects.create(room=room, sender=bob, content="room chat nobody else may read")
    Message.objects.create(room=room, sender=alice, ai_session=session, content="for the AI")
    return Ids(room=str(room.pk), session=str(session.pk), message=str(said.pk))


def _missing() -> Ids:
    return Ids(room=str(uuid.uuid4()), session=str(uuid.uuid4()))


def _state(ids: Ids) -> Any:
    room = ChatRoom.objects.get(pk=ids.room)
    return (
        room.name,
        sorted(room.participants.values_list("username", flat=True)),
        list(AiChatSession.objects.filter(room=room).values_list("pk", "is_active")),
        list(Message.objects.filter(room=room).values_list("content", "deleted_at")),
    )


def test_the_sweep_finds_the_operations_that_take_ids():
    swept = {str(op) for op in operations() if _takes_an_id(op)}
    # The ones known today; more may come, none may go missing.
    assert swept >= {
        "GET /api/chat/rooms/{room_id}/",
        "PATCH /api/chat/rooms/{room_id}/",
        "DELETE /api/chat/rooms/{room_id}/",
        "POST /api/chat/rooms/{room_id}/read/",
        "POST /api/chat/rooms/{room_id}/participants/",
        "DELETE /api/chat/rooms/{room_id}/participants/{username}/",
        "GET /api/chat/rooms/{room_id}/messages/",
        "POST /api/llm/start_session/",
        "GET /api/llm/sessions/",
        "GET /api/llm/sessions/{session_id}/",
        "GET /api/llm/sessions/{session_id}/messages/",
        "POST /api/llm/sessions/{session_id}/deactivate/",
        "POST /api/chat/rooms/{room_id}/summary/",
        "PATCH /api/llm/sessions/{session_id}/",
        "PATCH /api/chat/messages/{message_id}/",
        "DELETE /api/chat/messages/{message_id}/",
        "GET /api/chat/search/",
    }


def test_an_id_one_may_not_see_answers_as_a_missing_one(client_for, hidden, carol, settings):
    settings.LLM_PROVIDER = "echo"
    before = _state(hidden)
    outsider = client_for(carol)
    for op in filter(_takes_an_id, operations()):
        seen = call(outsider, op, hidden)
        missing = call(outsider, op, _missing())
        assert seen == missing, f"{op}: {seen} differs from the answer for a missing id {missing}"
        status, body = seen
        if op.path_params:
            assert (status, body["code"]) == (404, "not_found"), (str(op), seen)
        else:
            # An id in a body or a filter: refused as unknown, or an empty result.
            assert status in (200, 404), (str(op), seen)
            assert "secret plans" not in json.dumps(body)
    assert _state(hidden) == before


def test_anonymous_callers_get_401_whatever_the_id(client_for, hidden):
    anonymous = client_for(None)
    for op in filter(lambda o: o.secured, operations()):
        for ids in (hidden, _missing()):
            status, body = call(anonymous, op, ids)
            assert (status, body["code"]) == (401, "not_authenticated"), (str(op), body)


@pytest.mark.parametrize("bad", ["not-a-uuid", "0", "1e3", "%2e%2e", "x" * 300, "%00"])
def test_a_malformed_id_is_a_404_for_every_method(client_for, carol, bad):
    # An unsafe method used to get Django's CSRF 403 here, not the SPEC's 400 or 404.
    for op in operations():
        if not set(op.path_params) & {"room_id", "session_id"}:
            continue
        path = op.template
        for name in op.path_params:
            path = path.replace("{" + name + "}", bad if name != "username" else "bob")
        for client in (client_for(carol), client_for(None)):
            response = client.generic(op.method, path, data="{}", content_type="application/json")
            body = response.json()
            assert (response.status_code, body["code"]) == (404, "not_found"), (str(op), body)


def test_lists_show_nothing_of_rooms_one_is_not_in(client_for, hidden, carol):
    outsider = client_for(carol)
    for path in ("/api/chat/my-rooms/", "/api/llm/sessions/", "/api/llm/usage/?group_by=room"):
        text = outsider.get(path).content.decode()
        assert hidden.room not in text
        assert hidden.session not in text
        assert "secret plans" not in text
