"""A message after it is sent (SPEC 9.4): edit, delete, tombstones, the catch-up of changes."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.services import assistant_user
from chat.models import ChatRoom, Message
from chat.workspace import RoomChanged
from llm.models import AiChatSession, AiReply
from llm.providers.echo import OFFLINE_NOTICE
from llm.tests.sessions import open_session

pytestmark = pytest.mark.django_db(transaction=True)


def url(message):
    return f"/api/chat/messages/{message.pk}/"


def history(client, room, **query):
    return client.get(f"/api/chat/rooms/{room.pk}/messages/", query).json()


def say(room, sender, text, **extra):
    return Message.objects.create(room=room, sender=sender, content=text, **extra)


def item(body, message):
    return next(m for m in body["messages"] if m["message_id"] == message.pk)


# --- edit ----------------------------------------------------------------------------------


def test_the_sender_edits_and_history_says_when(client_for, room, alice, bob):
    said = say(room, bob, "helo")
    before = history(client_for(alice), room)
    assert item(before, said)["edited_at"] is None
    r = client_for(bob).patch(url(said), {"message": "  hello  "}, content_type="application/json")
    assert r.status_code == 200, r.json()
    body = r.json()["message"]
    assert (body["message"], body["can_edit"], body["can_delete"]) == ("hello", True, True)
    assert body["edited_at"] is not None
    said.refresh_from_db()
    assert said.content == "hello"
    assert said.edited_at.isoformat() == body["edited_at"]
    seen_by_owner = item(history(client_for(alice), room), said)
    assert seen_by_owner["message"] == "hello"
    assert seen_by_owner["edited_at"] == body["edited_at"]
    # alice owns the room: she may delete bob's message, not edit it.
    assert (seen_by_owner["can_edit"], seen_by_owner["can_delete"]) == (False, True)


@pytest.mark.parametrize(
    ("editor", "status", "code"),
    [
        ("owner", 403, "forbidden"),
        ("participant", 403, "forbidden"),
        ("outsider", 404, "not_found"),
    ],
)
def test_only_the_sender_edits(
    client_for, room, alice, bob, carol, make_user, editor, status, code
):
    dave = make_user("dave")
    room.participants.add(dave)
    said = say(room, bob, "mine")
    who = {"owner": alice, "participant": dave, "outsider": carol}[editor]
    r = client_for(who).patch(url(said), {"message": "theirs"}, content_type="application/json")
    assert (r.status_code, r.json()["code"]) == (status, code)
    said.refresh_from_db()
    assert (said.content, said.edited_at) == ("mine", None)


def test_nobody_edits_the_assistants_reply_or_a_deleted_message(client_for, room, alice):
    reply = say(room, assistant_user(), "an answer")
    gone = say(room, alice, "gone")
    client_for(alice).delete(url(gone))
    for message in (reply, gone):
        r = client_for(alice).patch(url(message), {"message": "x"}, content_type="application/json")
        assert (r.status_code, r.json()["code"]) == (403, "forbidden"), r.json()
    assert Message.objects.get(pk=reply.pk).content == "an answer"


def test_a_note_in_the_conversation_is_neither_edited_nor_deleted(client_for, room, alice):
    # A note records what someone did (here: changed a session's settings); it is not a message
    # of theirs to rewrite, and the owner may not take it out of the record either.
    note = say(room, alice, "settings", note={"kind": "session_settings", "changes": {}})
    listed = item(history(client_for(alice), room), note)
    assert (listed["can_edit"], listed["can_delete"]) == (False, False)
    client = client_for(alice)
    edited = client.patch(url(note), {"message": "x"}, content_type="application/json")
    deleted = client.delete(url(note))
    for r in (edited, deleted):
        assert (r.status_code, r.json()["code"]) == (403, "forbidden"), r.json()
    note.refresh_from_db()
    assert (note.content, note.deleted_at) == ("settings", None)


@pytest.mark.parametrize(
    ("text", "code"), [("   ", "empty_message"), ("x" * 4001, "message_too_long")]
)
def test_an_edit_is_checked_as_a_new_message_is(client_for, room, alice, text, code):
    said = say(room, alice, "keep me")
    r = client_for(alice).patch(url(said), {"message": text}, content_type="application/json")
    assert (r.status_code, r.json()["code"]) == (400, code)
    assert Message.objects.get(pk=said.pk).content == "keep me"


def test_edits_count_against_the_chat_rate(client_for, room, alice, settings):
    settings.CHAT_USER_RATE = "2/minute"
    said = say(room, alice, "v0")
    client = client_for(alice)
    answers = [
        client.patch(url(said), {"message": f"v{n}"}, content_type="application/json")
        for n in (1, 2, 3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["retry_after"] >= 1
    assert Message.objects.get(pk=said.pk).content == "v2"


# --- delete --------------------------------------------------------------------------------


def test_the_sender_or_the_owner_deletes_and_a_tombstone_keeps_the_place(
    client_for, room, alice, bob
):
    first, second, third = say(room, bob, "one"), say(room, bob, "two"), say(room, alice, "3")
    assert client_for(bob).delete(url(first)).status_code == 200
    r = client_for(alice).delete(url(second))  # the owner, another's message
    assert r.status_code == 200
    tomb = r.json()["message"]
    assert (tomb["message_id"], tomb["deleted"], tomb["message"]) == (second.pk, True, "")
    body = history(client_for(bob), room)
    assert [m["message_id"] for m in body["messages"]] == [first.pk, second.pk, third.pk]
    assert [(m["deleted"], m["message"]) for m in body["messages"]] == [
        (True, ""),
        (True, ""),
        (False, "3"),
    ]
    assert not any(m["can_edit"] or m["can_delete"] for m in body["messages"][:2])
    # The text is gone from the database, not only from the answer.
    assert Message.objects.get(pk=first.pk).content == ""


def test_a_participant_deletes_only_their_own(client_for, room, alice, bob, carol):
    said = say(room, alice, "the owner's")
    r = client_for(bob).delete(url(said))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    r = client_for(carol).delete(url(said))
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert Message.objects.get(pk=said.pk).deleted_at is None


def test_the_owner_deletes_the_assistants_reply(client_for, room, alice, bob):
    reply = say(room, assistant_user(), "an answer")
    assert client_for(bob).delete(url(reply)).status_code == 403
    assert client_for(alice).delete(url(reply)).status_code == 200


def test_deleting_twice_changes_nothing_more(client_for, room, alice):
    said = say(room, alice, "x")
    client = client_for(alice)
    assert client.delete(url(said)).status_code == 200
    changes = ChatRoom.objects.get(pk=room.pk).changes
    r = client.delete(url(said))
    assert (r.status_code, r.json()["message"]["deleted"]) == (200, True)
    assert ChatRoom.objects.get(pk=room.pk).changes == changes


# --- catch-up of changes -------------------------------------------------------------------


def test_changed_after_lists_every_change_since_in_order_once(client_for, room, alice, bob):
    a, b, c = say(room, alice, "a"), say(room, bob, "b"), say(room, alice, "c")
    client = client_for(alice)
    start = history(client, room)
    assert (start["change_seq"], start["changes"]) == (0, [])
    client.patch(url(a), {"message": "a2"}, content_type="application/json")
    client_for(bob).delete(url(b))
    client.patch(url(a), {"message": "a3"}, content_type="application/json")
    body = history(client, room, after=c.pk, changed_after=start["change_seq"])
    assert body["messages"] == []
    # a's first edit is superseded by its second: each message once, as it is now.
    assert [(m["message_id"], m["message"], m["deleted"]) for m in body["changes"]] == [
        (b.pk, "", True),
        (a.pk, "a3", False),
    ]
    assert (body["change_seq"], body["has_more_changes"]) == (3, False)
    again = history(client, room, after=c.pk, changed_after=body["change_seq"])
    assert (again["changes"], again["change_seq"]) == ([], 3)
    # Changes in another conversation of the room are not this one's.
    session = AiChatSession.objects.create(room=room, created_by=alice, model="m")
    elsewhere = say(room, alice, "in a session", ai_session=session)
    client.delete(url(elsewhere))
    assert history(client, room, changed_after=3)["changes"] == []


def test_changes_come_in_pages_that_never_split_a_change(client_for, room, alice, settings):
    settings.HISTORY_PAGE_MAX = 3
    messages = [say(room, alice, f"m{n}") for n in range(7)]
    client = client_for(alice)
    for m in messages:
        client.patch(url(m), {"message": f"{m.content}!"}, content_type="application/json")
    seen, cursor, pages = [], 0, 0
    while True:
        body = history(client, room, changed_after=cursor)
        seen += [m["message_id"] for m in body["changes"]]
        cursor = body["change_seq"]
        pages += 1
        if not body["has_more_changes"]:
            break
    assert seen == [m.pk for m in messages]
    assert (pages, cursor) == (3, 7)


def test_changed_after_costs_no_more_queries(client_for, room, alice):
    for n in range(20):
        client_for(alice).delete(url(say(room, alice, f"m{n}")))
    client = client_for(alice)
    client.get("/api/auth/me/")
    with CaptureQueriesContext(connection) as ctx:
        body = history(client, room, after=0, changed_after=5)
    assert len(body["changes"]) == 15
    # session + user + room access (room, participants) + page + changes
    assert len(ctx.captured_queries) == 6


@pytest.mark.postgres
def test_the_changes_are_found_by_their_index(room, alice):
    from chat.conversations import Conversation
    from chat.selectors import message_page

    with CaptureQueriesContext(connection) as ctx:
        message_page(
            conversation=Conversation(room_id=room.pk), after=0, changed_after=0, changes_read=0
        )
    changes_sql = next(q["sql"] for q in ctx.captured_queries if "change_seq" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute(f"EXPLAIN {changes_sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert "chat_msg_room_changes" in plan, plan


# --- the assistant's replies to an edited question ----------------------------------------


def test_an_edited_question_marks_the_replies_already_given(client_for, room, alice):
    session = AiChatSession.objects.create(room=room, created_by=alice, model="m")
    question = say(room, alice, "what is 2+2?", ai_session=session)
    answer = say(room, assistant_user(), "4", ai_session=session)
    AiReply.objects.create(
        room=room,
        session=session,
        trigger=question,
        requested_by=alice,
        reply=answer,
        status=AiReply.Status.DONE,
    )
    client = client_for(alice)
    path = f"/api/llm/sessions/{session.pk}/messages/"
    assert client.get(path).json()["messages"][1]["reply_to_edited"] is False
    client.patch(url(question), {"message": "what is 3+3?"}, content_type="application/json")
    body = client.get(path, {"changed_after": 0}).json()
    assert [m["reply_to_edited"] for m in body["messages"]] == [False, True]
    assert [m["message_id"] for m in body["changes"]] == [question.pk, answer.pk]


# --- frames --------------------------------------------------------------------------------


async def test_everyone_on_the_conversation_gets_the_edit_and_the_deletion(
    ws, client_for, room, alice, bob
):
    said = await sync_to_async(say)(room, bob, "typo")
    a = await ws(f"/ws/chat/{room.pk}/", alice)
    b = await ws(f"/ws/chat/{room.pk}/", bob)
    bob_client = await sync_to_async(client_for)(bob)
    r = await sync_to_async(bob_client.patch)(
        url(said), {"message": "fixed, @alice"}, content_type="application/json"
    )
    assert r.json()["message"]["mentions"] == ["alice"]
    edited_at = r.json()["message"]["edited_at"]
    for sock in (a, b):
        frame = await sock.recv_type("message_edited")
        assert frame == {
            "type": "message_edited",
            "message_id": said.pk,
            "message": "fixed, @alice",
            "edited_at": edited_at,
            "change_seq": 1,
            "replies": [],
            "mentions": ["alice"],
        }
    alice_client = await sync_to_async(client_for)(alice)
    await sync_to_async(alice_client.delete)(url(said))
    for sock in (a, b):
        frame = await sock.recv_type("message_deleted")
        assert frame == {"type": "message_deleted", "message_id": said.pk, "change_seq": 2}


async def test_new_message_frames_say_what_each_viewer_may_do_and_what_came_before(
    ws, room, alice, bob, carol
):
    await sync_to_async(room.participants.add)(carol)
    owner = await ws(f"/ws/chat/{room.pk}/", alice)
    sender = await ws(f"/ws/chat/{room.pk}/", bob)
    other = await ws(f"/ws/chat/{room.pk}/", carol)
    ids = []
    for text in ("one", "two"):
        await sender.send_json_to({"type": "chat_message", "message": text})
        frames = [await s.recv_type("chat_message") for s in (owner, sender, other)]
        assert {f["message_id"] for f in frames} == {frames[0]["message_id"]}
        assert {f["previous_id"] for f in frames} == {ids[-1] if ids else 0}
        ids.append(frames[0]["message_id"])
        mine = frames[1]
        assert (mine["is_self"], mine["can_edit"], mine["can_delete"]) == (True, True, True)
        assert (frames[0]["can_edit"], frames[0]["can_delete"]) == (False, True)
        assert (frames[2]["can_edit"], frames[2]["can_delete"]) == (False, False)


async def test_a_deletion_in_an_ai_session_reaches_the_session_and_leaves_a_tombstone(
    ws, client_for, room, alice, bob, settings
):
    settings.LLM_PROVIDER = "echo"
    session, a = await open_session(client_for, ws, alice, room)
    b = await ws(f"/ws/llm/{session}/", bob)
    await b.recv_type("ai_joined")
    room_socket = await ws(f"/ws/chat/{room.pk}/", alice)
    await a.send_json_to({"type": "chat_message", "message": "what is 2+2?"})
    question = (await a.recv_type("chat_message"))["message_id"]
    # The echo provider repeats the question as the model saw it (its speaker named).
    echoed = f"{OFFLINE_NOTICE}> alice: what is 2+2?"
    replies = []
    for sock in (a, b):
        frame = await sock.recv_type("chat_message")
        while not frame["is_ai"]:  # bob's socket gets the question first
            frame = await sock.recv_type("chat_message")
        replies.append((frame["reply_to"], frame["message"]))
    assert replies == [(question, echoed)] * 2
    answer = frame["message_id"]

    bob_client = await sync_to_async(client_for)(bob)
    r = await sync_to_async(bob_client.delete)(f"/api/chat/messages/{question}/")
    assert r.status_code == 403  # a participant deletes only their own
    alice_client = await sync_to_async(client_for)(alice)
    r = await sync_to_async(alice_client.delete)(f"/api/chat/messages/{question}/")
    assert r.status_code == 200, r.json()
    for sock in (a, b):
        frame = await sock.recv_type("message_deleted")
        assert frame == {"type": "message_deleted", "message_id": question, "change_seq": 1}

    path = f"/api/llm/sessions/{session}/messages/"
    body = (await sync_to_async(bob_client.get)(path, {"changed_after": 0})).json()
    assert [m["message_id"] for m in body["messages"]] == [question, answer]
    tomb, kept = body["messages"]
    assert (tomb["message_id"], tomb["deleted"], tomb["message"]) == (question, True, "")
    assert (tomb["can_edit"], tomb["can_delete"]) == (False, False)
    assert (kept["deleted"], kept["message"]) == (False, echoed)
    assert [(m["message_id"], m["deleted"], m["message"]) for m in body["changes"]] == [
        (question, True, "")
    ]
    assert (body["change_seq"], body["has_more_changes"]) == (1, False)
    stored = await Message.objects.aget(pk=question)
    assert stored.content == ""
    # The room's chat is another conversation: the first frame its socket gets after the
    # deletion is the next room message, not the session's deletion.
    await room_socket.send_json_to({"type": "chat_message", "message": "back in the room"})
    frame = await room_socket.recv()
    assert (frame["type"], frame["message"]) == ("chat_message", "back in the room")
    room_history = await sync_to_async(history)(alice_client, room, changed_after=0)
    assert [m["message"] for m in room_history["messages"]] == ["back in the room"]
    assert (room_history["changes"], room_history["change_seq"]) == ([], 0)


async def test_deleting_a_rooms_only_message_leaves_it_with_no_last_message(
    ws, client_for, room, alice, bob
):
    me_a = await ws("/ws/me/", alice)
    me_b = await ws("/ws/me/", bob)
    alice_client = await sync_to_async(client_for)(alice)
    bob_client = await sync_to_async(client_for)(bob)
    room_socket = await ws(f"/ws/chat/{room.pk}/", alice)
    await room_socket.send_json_to({"type": "chat_message", "message": "the only one"})
    only = (await room_socket.recv_type("chat_message"))["message_id"]
    activity = await me_b.recv_type("room_activity")
    assert (activity["message_id"], activity["unread_count"]) == (only, 1)
    shown = (await sync_to_async(bob_client.get)(f"/api/chat/rooms/{room.pk}/")).json()["room"]
    last = shown["last_message"]
    assert (last["message_id"], last["username"], last["preview"]) == (
        only,
        "alice",
        "the only one",
    )

    r = await sync_to_async(alice_client.delete)(f"/api/chat/messages/{only}/")
    assert r.status_code == 200, r.json()
    room_id = str(room.pk)
    # bob had it unread: the deletion takes it out of his count and the room's last message.
    frame = await me_b.recv_type("room_changed")
    RoomChanged(**frame)
    assert frame == {
        "type": "room_changed",
        "room_id": room_id,
        "unread_count": 0,
        "mention_count": 0,
        "last_changed": True,
        "last_message": None,
    }
    # alice sent it: her counts never held it, but her room list shows it no more either.
    frame = await me_a.recv_type("room_changed")
    assert (frame["room_id"], frame["last_changed"], frame["last_message"]) == (
        room_id,
        True,
        None,
    )
    assert (frame["unread_count"], frame["mention_count"]) == (0, 0)
    for client in (alice_client, bob_client):
        shown = (await sync_to_async(client.get)(f"/api/chat/rooms/{room.pk}/")).json()["room"]
        assert (shown["last_message"], shown["unread_count"]) == (None, 0)
        rooms = (await sync_to_async(client.get)("/api/chat/my-rooms/")).json()["rooms"]
        assert [(x["id"], x["last_message"]) for x in rooms] == [(room_id, None)]
