from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.conversations import Conversation
from chat.models import ChatRoom, Message
from chat.services import room_create
from llm.services import message_post

pytestmark = pytest.mark.django_db


def test_create_room(client_for, alice):
    r = client_for(alice).post_json("/api/chat/rooms/", {"name": "  backend  "})
    assert r.status_code == 201
    room = r.json()["room"]
    assert room["name"] == "backend"
    assert room["owner"] == "alice"
    assert room["is_owner"] is True
    assert room["participants"] == []
    uuid.UUID(room["id"])
    assert room["created_at"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_create_room_validates_name(client_for, alice, name):
    r = client_for(alice).post_json("/api/chat/rooms/", {"name": name})
    assert r.status_code == 400
    assert r.json()["code"] == "validation_error"


def test_my_rooms_lists_member_rooms_newest_first(client_for, alice, bob, carol):
    first = room_create(owner=alice, name="one")
    second = room_create(owner=bob, name="two")
    second.participants.add(alice)
    room_create(owner=carol, name="not mine")
    body = client_for(alice).get("/api/chat/my-rooms/").json()
    assert body["result"] == "success"
    assert body["total_count"] == 2
    assert [r["id"] for r in body["rooms"]] == [str(second.pk), str(first.pk)]
    assert body["rooms"][0]["is_owner"] is False
    assert body["rooms"][0]["participants"] == ["alice"]


def test_my_rooms_query_count_is_pinned(client_for, alice, make_user):
    for i in range(5):
        r = room_create(owner=alice, name=f"r{i}")
        people = [make_user(), make_user()]
        r.participants.add(*people)
        for n in range(3):
            Message.objects.create(room=r, sender=people[n % 2], content=f"@alice m{n}")
    c = client_for(alice)
    c.get("/api/chat/my-rooms/")  # warm the session
    with CaptureQueriesContext(connection) as ctx:
        rooms = c.get("/api/chat/my-rooms/").json()["rooms"]
    assert len(rooms) == 5
    assert all(r["unread_count"] == 3 and r["last_message"] for r in rooms)
    # session + user + rooms with their unread counts, mentions and last message ids (one
    # query) + participants + the last messages
    assert len(ctx.captured_queries) == 5


def test_room_detail(client_for, room, bob):
    body = client_for(bob).get(f"/api/chat/rooms/{room.pk}/").json()
    assert body["room"]["name"] == "devs"
    assert body["room"]["is_owner"] is False
    assert body["room"]["participants"] == ["bob"]


def test_owner_adds_participant(client_for, room, alice, carol):
    r = client_for(alice).post_json(
        f"/api/chat/rooms/{room.pk}/participants/", {"username": "carol"}
    )
    assert r.status_code == 200
    assert r.json()["room"]["participants"] == ["bob", "carol"]


def test_participant_cannot_add(client_for, room, bob, carol):
    r = client_for(bob).post_json(f"/api/chat/rooms/{room.pk}/participants/", {"username": "carol"})
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"


def test_add_unknown_user(client_for, room, alice):
    r = client_for(alice).post_json(
        f"/api/chat/rooms/{room.pk}/participants/", {"username": "nobody"}
    )
    assert r.status_code == 404


def test_add_the_assistant_is_refused(client_for, room, alice):
    from accounts.services import assistant_user

    assistant_user()
    r = client_for(alice).post_json(
        f"/api/chat/rooms/{room.pk}/participants/", {"username": "AI_Assistant"}
    )
    assert r.status_code == 400


def test_owner_removes_participant(client_for, room, alice):
    r = client_for(alice).delete(f"/api/chat/rooms/{room.pk}/participants/bob/")
    assert r.status_code == 200
    assert r.json()["room"]["participants"] == []


def test_participant_leaves(client_for, room, bob):
    r = client_for(bob).delete(f"/api/chat/rooms/{room.pk}/participants/bob/")
    assert r.status_code == 200
    assert client_for(bob).get(f"/api/chat/rooms/{room.pk}/").status_code == 404


def test_participant_cannot_remove_another(client_for, room, bob, carol):
    room.participants.add(carol)
    r = client_for(bob).delete(f"/api/chat/rooms/{room.pk}/participants/carol/")
    assert r.status_code == 403


def test_owner_cannot_be_removed(client_for, room, alice):
    r = client_for(alice).delete(f"/api/chat/rooms/{room.pk}/participants/alice/")
    assert r.status_code == 400


def _messages(room, sender, n):
    return [Message.objects.create(room=room, sender=sender, content=f"m{i}") for i in range(n)]


def test_history_latest_page_oldest_first(client_for, room, alice, bob):
    msgs = _messages(room, alice, 5)
    body = client_for(bob).get(f"/api/chat/rooms/{room.pk}/messages/?limit=3").json()
    assert [m["message_id"] for m in body["messages"]] == [m.pk for m in msgs[2:]]
    assert body["has_more"] is True
    first = body["messages"][0]
    assert set(first) == {
        "message_id",
        "message",
        "username",
        "timestamp",
        "is_self",
        "is_ai",
        "mentions",
        "edited_at",
        "deleted",
        "reply_to_edited",
        "can_edit",
        "can_delete",
    }
    assert first["is_self"] is False
    assert first["timestamp"].endswith("+00:00")


def test_history_before_and_after(client_for, room, alice):
    msgs = _messages(room, alice, 6)
    c = client_for(alice)
    before = c.get(f"/api/chat/rooms/{room.pk}/messages/?before={msgs[3].pk}&limit=2").json()
    assert [m["message_id"] for m in before["messages"]] == [msgs[1].pk, msgs[2].pk]
    assert before["has_more"] is True
    after = c.get(f"/api/chat/rooms/{room.pk}/messages/?after={msgs[3].pk}").json()
    assert [m["message_id"] for m in after["messages"]] == [msgs[4].pk, msgs[5].pk]
    assert after["has_more"] is False
    assert after["messages"][0]["is_self"] is True
    partial = c.get(f"/api/chat/rooms/{room.pk}/messages/?after={msgs[0].pk}&limit=2").json()
    assert partial["has_more"] is True


@pytest.mark.parametrize("query", ["limit=0", "limit=500", "before=abc", "after=-1"])
def test_history_bad_query(client_for, room, alice, query):
    r = client_for(alice).get(f"/api/chat/rooms/{room.pk}/messages/?{query}")
    assert r.status_code == 400
    assert r.json()["code"] == "validation_error"


def test_history_query_count_is_pinned(client_for, room, alice, bob):
    for n in range(10):
        message_post(
            conversation=Conversation(room_id=room.pk, session_id=None),
            sender=alice,
            text=f"@bob look at {n}",
            rate_limited=False,
        )
    _messages(room, bob, 10)
    c = client_for(alice)
    c.get("/api/auth/me/")
    with CaptureQueriesContext(connection) as ctx:
        body = c.get(f"/api/chat/rooms/{room.pk}/messages/").json()
    assert [m["mentions"] for m in body["messages"]] == [["bob"]] * 10 + [[]] * 10
    # session + user + room access (room, participants) + page + the page's mentions
    assert len(ctx.captured_queries) == 6
    # A page where no message has an `@` mentions nobody: no query for it.
    with CaptureQueriesContext(connection) as ctx:
        c.get(f"/api/chat/rooms/{room.pk}/messages/?after={body['messages'][9]['message_id']}")
    assert len(ctx.captured_queries) == 5


# --- the authorisation matrix -----------------------------------------------------------------
ROOM_ENDPOINTS = [
    ("get", "/api/chat/rooms/{room}/", None),
    ("get", "/api/chat/rooms/{room}/messages/", None),
    ("post", "/api/chat/rooms/{room}/participants/", {"username": "carol"}),
    ("delete", "/api/chat/rooms/{room}/participants/bob/", None),
]
EXPECTED = {
    # role: status per endpoint, in ROOM_ENDPOINTS order
    "anonymous": [401, 401, 401, 401],
    "non_member": [404, 404, 404, 404],
    "participant": [200, 200, 403, 200],
    "owner": [200, 200, 200, 200],
}


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("index", range(len(ROOM_ENDPOINTS)))
def test_authorisation_matrix(client_for, room, alice, bob, carol, make_user, role, index):
    user = {
        "anonymous": None,
        "non_member": make_user("mallory"),
        "participant": bob,
        "owner": alice,
    }[role]
    method, path, body = ROOM_ENDPOINTS[index]
    c = client_for(user)
    url = path.format(room=room.pk)
    r = c.post_json(url, body) if method == "post" else getattr(c, method)(url)
    assert r.status_code == EXPECTED[role][index], r.content
    assert r.json()["result"] == ("success" if r.status_code == 200 else "error")


def test_missing_and_hidden_rooms_answer_alike(client_for, room, make_user):
    outsider = client_for(make_user("mallory"))
    hidden = outsider.get(f"/api/chat/rooms/{room.pk}/")
    missing = outsider.get(f"/api/chat/rooms/{uuid.uuid4()}/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


def test_malformed_uuid_is_404_not_500(client_for, alice):
    r = client_for(alice).get("/api/chat/rooms/123-not-a-uuid/messages/")
    assert r.status_code == 404
    assert r.json()["result"] == "error"


def test_room_list_requires_sign_in(anon):
    assert anon.get("/api/chat/my-rooms/").status_code == 401
    assert anon.post_json("/api/chat/rooms/", {"name": "x"}).status_code == 401
    assert ChatRoom.objects.count() == 0
