"""Read markers, unread and mention counts, mentions on messages, renaming and deleting rooms,
and the events they announce (SPEC 9.1, 9.2)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import selectors, services
from chat.conversations import Conversation
from chat.models import ChatRoom, Mention, Message, ReadMarker
from chat.services import room_create
from chat.workspace import MemberChange, Presence, Read, RoomRemoved, _presence_events
from core.events import collected
from core.groups import room_members_group, user_group
from llm import services as llm_services
from llm.models import AiChatSession, LlmUsage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def room(alice, bob, carol):
    room = room_create(owner=alice, name="devs")
    room.participants.add(bob, carol)
    return room


def say(room, user, text, session=None):
    return llm_services.message_post(
        conversation=Conversation(room_id=room.pk, session_id=session.pk if session else None),
        sender=user,
        text=text,
        rate_limited=False,
    )


def personal(batch, kind):
    return [e for e in batch if e["type"] == "hub.personal" and e["payload"]["kind"] == kind]


# --- mentions ----------------------------------------------------------------------------------


def test_mentions_of_members_are_recorded_in_the_order_named(room, alice, bob, carol, make_user):
    outsider = make_user("mallory")
    posted = say(room, alice, "@Carol and @bob, not @mallory nor @nobody, and @alice herself")
    assert posted.mentions == ["carol", "bob"]
    stored = list(
        Mention.objects.filter(message=posted.message).values_list("user__username", "in_room_chat")
    )
    assert sorted(stored) == [("bob", True), ("carol", True)]
    assert not Mention.objects.filter(user=outsider).exists()


def test_a_message_naming_nobody_costs_no_mention_query(room, alice, monkeypatch):
    from chat import services as chat_services

    calls = []
    real = chat_services.fetch_one

    def counted(sql, params):
        calls.append(sql)
        return real(sql, params)

    monkeypatch.setattr(chat_services, "fetch_one", counted)
    with CaptureQueriesContext(connection) as ctx:
        say(room, alice, "an email to bob@example.com names nobody")
    sql = [q["sql"] for q in ctx.captured_queries]
    assert len(calls) == 1
    assert "INSERT INTO" in calls[0]
    assert not [q for q in sql if Mention._meta.db_table in q or "username_key" in q], sql
    if connection.vendor == "postgresql":
        # The insert, the membership check and the conversation's order are one statement.
        assert sql == [], sql


def test_a_mention_is_stored_with_its_message_or_not_at_all(room, alice, bob, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("mentions could not be written")

    monkeypatch.setattr(llm_services, "mentions_record", broken)
    with pytest.raises(RuntimeError):
        say(room, alice, "hello @bob")
    assert not Message.objects.exists()


def test_mentions_in_a_session_are_recorded_and_not_counted_as_room_chat(room, alice, bob):
    session = AiChatSession.objects.create(room=room, created_by=alice, model="m")
    posted = say(room, alice, "@bob look at this", session=session)
    assert posted.mentions == ["bob"]
    assert Mention.objects.get().in_room_chat is False
    assert selectors.room_view(user=bob, room_id=room.pk).mention_count == 0


def test_history_items_carry_their_mentions(client_for, room, alice, bob):
    say(room, alice, "hi @bob and @carol")
    say(room, bob, "no one")
    body = client_for(bob).get(f"/api/chat/rooms/{room.pk}/messages/").json()
    assert [m["mentions"] for m in body["messages"]] == [["bob", "carol"], []]


def test_the_chat_message_frame_carries_the_mentions(room, alice, bob):
    with collected() as batch:
        say(room, alice, "@bob hi")
    frames = [e for e in batch if e["type"] == "hub.frame"]
    assert frames[0]["frame"]["mentions"] == ["bob"]
    assert frames[0]["self_frame"]["mentions"] == ["bob"]


# --- unread counts, read markers -----------------------------------------------------------------


def test_unread_and_mention_counts(room, alice, bob, carol):
    say(room, alice, "one")
    say(room, alice, "two @bob")
    say(room, bob, "my own message is not unread to me")
    say(room, carol, "three @bob")
    view = selectors.room_view(user=bob, room_id=room.pk)
    assert (view.unread_count, view.mention_count, view.last_read_message_id) == (3, 2, 0)
    assert view.last_message is not None
    assert view.last_message.content == "three @bob"


def test_the_read_marker_moves_forward_only_and_announces_itself(room, alice, bob):
    first = say(room, alice, "@bob one").message
    second = say(room, alice, "two").message
    third = say(room, alice, "@bob three").message
    with collected() as batch:
        state = services.room_mark_read(room_id=room.pk, user=bob, message_id=second.pk)
    assert (state.last_read_message_id, state.unread_count, state.mention_count) == (
        second.pk,
        1,
        1,
    )
    [event] = personal(batch, "read")
    assert event["group"] == user_group(bob.pk)
    payload = event["payload"]
    Read(**payload)
    assert payload["unread_count"] == 1
    with collected() as batch:
        back = services.room_mark_read(room_id=room.pk, user=bob, message_id=first.pk)
    assert back.last_read_message_id == second.pk
    assert batch == []  # nothing moved, nothing to tell
    ahead = services.room_mark_read(room_id=room.pk, user=bob, message_id=third.pk + 1000)
    assert (ahead.last_read_message_id, ahead.unread_count) == (third.pk, 0)


def test_read_endpoint(client_for, room, alice, bob, make_user):
    message = say(room, alice, "hello").message
    r = client_for(bob).post_json(f"/api/chat/rooms/{room.pk}/read/", {"message_id": message.pk})
    assert r.status_code == 200
    assert r.json() == {
        "result": "success",
        "room_id": str(room.pk),
        "last_read_message_id": message.pk,
        "unread_count": 0,
        "mention_count": 0,
    }
    outsider = client_for(make_user("mallory"))
    r = outsider.post_json(f"/api/chat/rooms/{room.pk}/read/", {"message_id": message.pk})
    assert r.status_code == 404
    assert not ReadMarker.objects.filter(user__username="mallory").exists()
    r = client_for(bob).post_json(f"/api/chat/rooms/{room.pk}/read/", {"message_id": -1})
    assert r.status_code == 400


def test_a_new_member_has_nothing_unread_from_before(room, alice, make_user):
    say(room, alice, "said before dave came")
    dave = make_user("dave")
    services.room_add_participant(room_id=room.pk, actor=alice, username="dave")
    assert selectors.room_view(user=dave, room_id=room.pk).unread_count == 0
    say(room, alice, "said after")
    assert selectors.room_view(user=dave, room_id=room.pk).unread_count == 1


def test_rooms_are_listed_by_latest_activity(client_for, alice, bob):
    quiet = room_create(owner=alice, name="quiet")
    busy = room_create(owner=bob, name="busy")
    busy.participants.add(alice)
    newest = room_create(owner=alice, name="newest, empty")
    say(busy, bob, "something happens here")
    names = [r["name"] for r in client_for(alice).get("/api/chat/my-rooms/").json()["rooms"]]
    assert names == ["busy", "newest, empty", "quiet"]
    say(quiet, alice, "now here")
    names = [r["name"] for r in client_for(alice).get("/api/chat/my-rooms/").json()["rooms"]]
    assert names == ["quiet", "busy", "newest, empty"]
    assert newest.pk


def test_room_json_has_the_new_fields(client_for, room, alice, bob):
    say(room, alice, "x" * 200 + "\n\n  tail")
    body = client_for(bob).get(f"/api/chat/rooms/{room.pk}/").json()["room"]
    assert body["unread_count"] == 1
    assert body["mention_count"] == 0
    assert body["last_read_message_id"] == 0
    last = body["last_message"]
    assert last["username"] == "alice"
    assert len(last["preview"]) == 140
    assert "\n" not in last["preview"]
    assert body["online"] == []


def test_a_room_with_no_messages_has_no_last_message(client_for, room, alice, bob):
    # SPEC 9.2: `last_message` is `{message_id, username, preview, timestamp}` or null.
    for user in (alice, bob):
        client = client_for(user)
        body = client.get(f"/api/chat/rooms/{room.pk}/").json()["room"]
        assert (body["last_message"], body["unread_count"], body["mention_count"]) == (None, 0, 0)
        assert body["last_read_message_id"] == 0
        rooms = client.get("/api/chat/my-rooms/").json()["rooms"]
        assert [(r["id"], r["last_message"]) for r in rooms] == [(str(room.pk), None)]
    said = say(room, alice, "first").message
    body = client_for(bob).get(f"/api/chat/rooms/{room.pk}/").json()["room"]
    assert body["last_message"]["message_id"] == said.pk


def test_room_activity_event_for_room_chat_only(room, alice, bob):
    session = AiChatSession.objects.create(room=room, created_by=alice, model="m")
    with collected() as batch:
        posted = say(room, alice, "hi @bob\nsecond line")
        say(room, alice, "in a session", session=session)
    [event] = personal(batch, "room_activity")
    assert event["group"] == room_members_group(room.pk)
    payload = event["payload"]
    assert payload["message_id"] == posted.message.pk
    assert payload["sender_id"] == alice.pk
    assert payload["mentioned"] == [bob.pk]
    assert payload["preview"] == "hi @bob second line"


# --- members ---------------------------------------------------------------------------------


def test_adding_and_removing_members_announces_it(room, alice, bob, make_user):
    dave = make_user("dave")
    with collected() as batch:
        services.room_add_participant(room_id=room.pk, actor=alice, username="dave")
    [added] = personal(batch, "room_added")
    assert added["group"] == user_group(dave.pk)
    assert added["payload"]["room"]["name"] == "devs"
    assert added["payload"]["room"]["is_owner"] is False
    [member] = personal(batch, "member_added")
    assert member["group"] == room_members_group(room.pk)
    MemberChange(type="member_added", **{k: member["payload"][k] for k in ("room_id", "username")})
    with collected() as batch:
        services.room_remove_participant(room_id=room.pk, actor=alice, username="dave")
        services.room_remove_participant(room_id=room.pk, actor=bob, username="bob")
    removed = personal(batch, "room_removed")
    assert [(e["group"], e["payload"]["reason"]) for e in removed] == [
        (user_group(dave.pk), "removed"),
        (user_group(bob.pk), "left"),
    ]
    RoomRemoved(room_id=removed[0]["payload"]["room_id"], reason="removed")
    assert [e["payload"]["username"] for e in personal(batch, "member_removed")] == ["dave", "bob"]


def test_creating_a_room_announces_it_to_its_owner(alice):
    with collected() as batch:
        room = room_create(owner=alice, name="mine")
    [added] = personal(batch, "room_added")
    assert added["group"] == user_group(alice.pk)
    assert added["payload"]["room"]["id"] == str(room.pk)
    assert added["payload"]["room"]["is_owner"] is True


# --- rename and delete -------------------------------------------------------------------------


def test_the_owner_renames_the_room(client_for, room, alice, bob, make_user):
    r = client_for(alice).patch(
        f"/api/chat/rooms/{room.pk}/", {"name": "  backend  "}, content_type="application/json"
    )
    assert r.status_code == 200
    assert r.json()["room"]["name"] == "backend"
    r = client_for(bob).patch(
        f"/api/chat/rooms/{room.pk}/", {"name": "mine now"}, content_type="application/json"
    )
    assert r.status_code == 403
    r = client_for(alice).patch(
        f"/api/chat/rooms/{room.pk}/", {"name": " "}, content_type="application/json"
    )
    assert r.status_code == 400
    r = client_for(make_user("mallory")).patch(
        f"/api/chat/rooms/{room.pk}/", {"name": "x"}, content_type="application/json"
    )
    assert r.status_code == 404
    assert ChatRoom.objects.get(pk=room.pk).name == "backend"


def test_renaming_announces_the_room_to_its_members(room, alice):
    with collected() as batch:
        services.room_update(room_id=room.pk, actor=alice, name="new name")
    [event] = personal(batch, "room_updated")
    assert event["group"] == room_members_group(room.pk)
    assert event["payload"]["room"]["name"] == "new name"


def test_the_owner_deletes_the_room_and_usage_stays(client_for, room, alice, bob):
    session = AiChatSession.objects.create(room=room, created_by=bob, model="m")
    say(room, bob, "in the room")
    say(room, bob, "in the session", session=session)
    LlmUsage.objects.create(
        provider="openai",
        model="m",
        user=bob,
        session=session,
        room=room,
        prompt_tokens=10,
        completion_tokens=5,
        total_tokens=15,
        cost_usd=Decimal("0.001"),
        finish_reason="stop",
    )
    assert client_for(bob).delete(f"/api/chat/rooms/{room.pk}/").status_code == 403
    with collected() as batch:
        r = client_for(alice).delete(f"/api/chat/rooms/{room.pk}/")
    assert r.status_code == 200
    assert r.json() == {"result": "success"}
    assert not ChatRoom.objects.filter(pk=room.pk).exists()
    assert not Message.objects.exists()
    assert not AiChatSession.objects.exists()
    usage = LlmUsage.objects.get()
    assert (usage.room_id, usage.session_id, usage.total_tokens) == (None, None, 15)
    [removed] = personal(batch, "room_removed")
    assert removed["group"] == room_members_group(room.pk)
    assert removed["payload"]["reason"] == "deleted"
    closes = [e for e in batch if e["type"] == "hub.control" and e["action"] == "close"]
    assert {e["params"]["code"] for e in closes} == {4404}
    assert len(closes) == 2  # the room's chat and its one session
    assert client_for(alice).get(f"/api/chat/rooms/{room.pk}/").status_code == 404


# --- presence ----------------------------------------------------------------------------------


def test_presence_goes_to_the_rooms_the_user_is_in(room, alice, bob, make_user):
    other = room_create(owner=bob, name="other")
    make_user("loner")
    events = _presence_events(user_id=bob.pk, online=True)
    assert sorted(e["group"] for e in events) == sorted(
        [room_members_group(room.pk), room_members_group(other.pk)]
    )
    Presence(username=events[0]["payload"]["username"], online=True)
