"""The API keeps the promises of its own OpenAPI document (issue 7), checked by schemathesis
against the Django app in-process: for generated valid and invalid requests to every
operation, signed in, no answer is a 5xx, every status code is declared, every body and
content type matches the document, invalid input is refused, and an operation that needs
a session refuses a request without one.

Schema-valid input may still be refused for reasons a JSON schema cannot state (a weak
password, a taken name, a room one may not see), so `positive_data_acceptance` is left out.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accounts.models import User
from chat.models import Message
from chat.services import room_create
from llm.models import AiChatSession

schema = schemathesis.openapi.from_wsgi("/api/openapi.json", WSGIHandler())

# The session cookie can only be made once the test database exists, after the cases are
# generated; this marks the cases that carry it, and each call swaps the real one in.
SIGNED_IN = "signed-in"


@schema.auth(refresh_interval=None)
class SessionCookie:
    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
        return SIGNED_IN

    def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.cookies = {**(case.cookies or {}), django_settings.SESSION_COOKIE_NAME: data}


@dataclass
class World:
    """A user with a room, a participant, an AI session and messages: half of the calls with
    ids in their path use these, so the operations' success answers are checked too."""

    user: User
    ids: dict[str, str]
    turn: Iterator[int] = field(default_factory=itertools.count)


@pytest.fixture
def world(make_user: Any, settings: Any) -> Iterator[World]:
    # Django's test client does the same: the handler must not close the test's connection
    # (and so its transaction) at the end of every request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    settings.LLM_PROVIDER = "echo"
    user = make_user("contract")
    member = make_user("member")
    room = room_create(owner=user, name="contract room")
    room.participants.add(member)
    session = AiChatSession.objects.create(room=room, created_by=user, model="echo")
    Message.objects.create(room=room, sender=member, content="room chat")
    mine = Message.objects.create(room=room, sender=user, ai_session=session, content="to the AI")
    yield World(
        user=user,
        ids={
            "room_id": str(room.pk),
            "room_uuid": str(room.pk),
            "session_id": str(session.pk),
            "username": "member",
            "message_id": str(mine.pk),
        },
    )
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _sign_in(case: schemathesis.Case, user: User) -> None:
    name = django_settings.SESSION_COOKIE_NAME
    if (case.cookies or {}).get(name) == SIGNED_IN:
        client = Client()
        client.force_login(user)
        case.cookies[name] = client.cookies[name].value


def _use_real_ids(case: schemathesis.Case, world: World) -> None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not next(world.turn) % 2:
        return
    for container in (case.path_parameters, case.query, case.body):
        if isinstance(container, dict):
            for name in container.keys() & world.ids.keys():
                container[name] = world.ids[name]


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@pytest.mark.django_db
def test_every_answer_matches_the_document(case: schemathesis.Case, world: World) -> None:
    _sign_in(case, world.user)
    _use_real_ids(case, world)
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


# --- what the document says, read as a client's author reads it ------------------------------


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: Any = document
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return _resolve(document, found)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/chat/rooms/{room_id}/messages/", "/api/llm/sessions/{session_id}/messages/"]
)
def test_history_declares_the_catch_up_of_edits_and_deletions(anon: Client, path: str) -> None:
    # SPEC 9.4: a reconnecting client learns of the edits and deletions it missed in one
    # request, and the API document says how: `changed_after=<change_seq>` on the history.
    document = anon.get("/api/openapi.json").json()
    operation = document["paths"][path]["get"]
    [param] = [p for p in operation["parameters"] if p["name"] == "changed_after"]
    assert (param["in"], param["required"]) == ("query", False)
    integer = {"type": "integer", "minimum": 0, "maximum": 2**62}
    assert param["schema"]["anyOf"] == [integer, {"type": "null"}]
    assert "`changed_after=" in operation["description"]
    page = _resolve(
        document, operation["responses"]["200"]["content"]["application/json"]["schema"]
    )
    assert {"change_seq", "changes", "has_more_changes"} <= set(page["required"])
    fields = page["properties"]
    assert (fields["change_seq"]["type"], fields["has_more_changes"]["type"]) == (
        "integer",
        "boolean",
    )
    # A change is a message as it is now: a deleted one is a tombstone, `deleted` true.
    change = _resolve(document, fields["changes"]["items"])
    deleted = change["properties"]["deleted"]
    assert (deleted["type"], deleted["default"]) == ("boolean", False)
    assert {"message_id", "message"} <= set(change["required"])
