"""`/ws/me/` (SPEC 9.1), presence, typing and who views a session (9.3), on the real ASGI stack.

"Nothing else arrives" is never a sleep: each test makes a later event happen and checks what
came before it.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from chat import services as chat_services
from chat.conversations import Conversation
from chat.services import room_create
from chat.typing import Typing
from chat.workspace import (
    MemberChange,
    Presence,
    Read,
    RoomActivity,
    RoomAdded,
    RoomChanged,
    RoomRemoved,
    RoomUpdated,
)
from core import sockets
from llm import services
from llm.consumers import SessionViewers
from llm.workspace import SessionEvent

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def say(room, user, text):
    return services.message_post(
        conversation=Conversation(room_id=room.pk), sender=user, text=text, rate_limited=False
    ).message


async def until(sock, frame_type, *, skip=("presence",), wait=3):
    """The next frame of `frame_type`; frames of the types in `skip` may come before it, any
    other frame fails the test."""
    while True:
        frame = await sock.recv(wait)
        if frame["type"] == frame_type:
            return frame
        assert frame["type"] in skip, frame


async def test_anonymous_and_foreign_origins_are_refused(ws, alice):
    anonymous = await ws("/ws/me/", None)
    assert await anonymous.closed_with() == 4401
    foreign = await ws("/ws/me/", alice, origin="https://evil.example")
    assert await foreign.closed_with() == 4403


async def test_room_activity_counts_unread_and_mentions_per_member(ws, room, alice, bob, carol):
    await sync_to_async(room.participants.add)(carol)
    me_b = await ws("/ws/me/", bob)
    me_c = await ws("/ws/me/", carol)
    await me_b.send_json_to({"type": "ping"})
    assert await until(me_b, "pong") == {"type": "pong"}
    first = await say(room, alice, "hello all")
    second = await say(room, alice, "@bob look")
    own = await say(room, bob, "my own")
    frames_b = [await until(me_b, "room_activity") for _ in range(2)]
    for frame in frames_b:
        RoomActivity(**frame)
    assert [(f["message_id"], f["unread_count"], f["mention"]) for f in frames_b] == [
        (first.pk, 1, False),
        (second.pk, 2, True),
    ]
    assert frames_b[1]["preview"] == "@bob look"
    assert frames_b[1]["username"] == "alice"
    assert frames_b[1]["room_id"] == str(room.pk)
    frames_c = [await until(me_c, "room_activity") for _ in range(3)]
    assert [(f["message_id"], f["unread_count"], f["mention"]) for f in frames_c] == [
        (first.pk, 1, False),
        (second.pk, 2, False),
        (own.pk, 3, False),
    ]
    # bob's own message came to nobody's unread count of his: the next frame after it is the
    # one this read causes.
    await sync_to_async(chat_services.room_mark_read)(
        room_id=room.pk, user=bob, message_id=second.pk
    )
    read = await until(me_b, "read")
    Read(**read)
    assert read == {
        "type": "read",
        "room_id": str(room.pk),
        "last_read_message_id": second.pk,
        "unread_count": 0,
        "mention_count": 0,
    }
    later = await say(room, alice, "after the read")
    activity = await until(me_b, "room_activity")
    assert (activity["message_id"], activity["unread_count"]) == (later.pk, 1)


async def test_a_socket_opened_later_starts_from_the_database_counts(ws, room, alice, bob):
    await say(room, alice, "@bob one")
    await say(room, alice, "two")
    me_b = await ws("/ws/me/", bob)
    third = await say(room, alice, "three")
    frame = await until(me_b, "room_activity")
    assert (frame["message_id"], frame["unread_count"], frame["mention"]) == (third.pk, 3, False)


async def test_read_reaches_the_users_other_sockets(ws, room, alice, bob):
    message = await say(room, alice, "hi")
    tab_one = await ws("/ws/me/", bob)
    tab_two = await ws("/ws/me/", bob)
    await sync_to_async(chat_services.room_mark_read)(
        room_id=room.pk, user=bob, message_id=message.pk
    )
    for tab in (tab_one, tab_two):
        assert (await until(tab, "read"))["last_read_message_id"] == message.pk


async def test_editing_and_deleting_keep_unread_mentions_and_last_message_true(
    ws, room, alice, bob
):
    from chat import edits

    plain = await say(room, alice, "see the logs")
    named = await say(room, alice, "@bob have a look")
    me_b = await ws("/ws/me/", bob)
    me_a = await ws("/ws/me/", alice)
    # The edit of the first message adds a mention; its text is not the room's last message.
    await sync_to_async(edits.message_edit)(
        message_id=plain.pk, actor=alice, text="@bob see the logs"
    )
    frame = await until(me_b, "room_changed")
    RoomChanged(**frame)
    assert (frame["unread_count"], frame["mention_count"], frame["last_changed"]) == (2, 2, False)
    # Deleting the last message: one unread and one mention fewer, the preview goes back.
    await sync_to_async(edits.message_delete)(message_id=named.pk, actor=alice)
    frame = await until(me_b, "room_changed")
    assert (frame["unread_count"], frame["mention_count"], frame["last_changed"]) == (1, 1, True)
    assert frame["last_message"]["message_id"] == plain.pk
    assert frame["last_message"]["preview"] == "@bob see the logs"
    # The sender's own counts never include her messages: the edit changed nothing she sees,
    # so her first frame is the deletion's, with the new last message.
    mine = await until(me_a, "room_changed")
    assert mine["last_changed"] is True
    assert (mine["unread_count"], mine["last_message"]["message_id"]) == (0, plain.pk)
    # What the socket counted is what a new one reads from the database.
    fresh = await ws("/ws/me/", bob)
    later = await say(room, alice, "and one more")
    for sock in (me_b, fresh):
        activity = await until(sock, "room_activity")
        assert (activity["message_id"], activity["unread_count"]) == (later.pk, 2)


async def test_rooms_added_and_removed(ws, room, alice, bob, make_user):
    dave = await sync_to_async(make_user)("dave")
    me_d = await ws("/ws/me/", dave)
    me_b = await ws("/ws/me/", bob)
    await sync_to_async(chat_services.room_add_participant)(
        room_id=room.pk, actor=alice, username="dave"
    )
    added = await until(me_d, "room_added")
    RoomAdded(**added)
    assert added["room"]["id"] == str(room.pk)
    assert added["room"]["is_owner"] is False
    assert added["room"]["participants"] == ["bob", "dave"]
    joined = await until(me_b, "member_added")
    MemberChange(**joined)
    assert joined == {"type": "member_added", "room_id": str(room.pk), "username": "dave"}
    # dave now hears the room (his socket joined its members' group as it was added).
    message = await say(room, alice, "welcome")
    assert (await until(me_d, "room_activity"))["message_id"] == message.pk

    await sync_to_async(chat_services.room_remove_participant)(
        room_id=room.pk, actor=alice, username="dave"
    )
    removed = await until(me_d, "room_removed")
    RoomRemoved(**removed)
    assert removed == {"type": "room_removed", "room_id": str(room.pk), "reason": "removed"}
    left = await until(me_b, "member_removed", skip=("presence", "room_activity"))
    assert left["username"] == "dave"
    # A removal from a room closes the sockets on it, never /ws/me/: it hears its other rooms.
    own = await sync_to_async(room_create)(owner=dave, name="dave's own")
    assert (await until(me_d, "room_added"))["room"]["id"] == str(own.pk)
    # And nothing of the room he left: the next activity he sees is his own room's.
    await say(room, alice, "dave is gone")
    await sync_to_async(own.participants.add)(alice)
    message = await say(own, alice, "hi dave")
    assert (await until(me_d, "room_activity"))["message_id"] == message.pk


async def test_a_room_created_reaches_its_owners_other_tabs(ws, alice):
    me = await ws("/ws/me/", alice)
    room = await sync_to_async(room_create)(owner=alice, name="fresh")
    added = await until(me, "room_added")
    assert added["room"]["id"] == str(room.pk)
    assert added["room"]["is_owner"] is True
    assert added["room"]["online"] == ["alice"]


async def test_rename_is_personal_and_delete_closes_everything(ws, room, alice, bob, settings):
    settings.LLM_PROVIDER = "echo"
    me_a = await ws("/ws/me/", alice)
    me_b = await ws("/ws/me/", bob)
    message = await say(room, alice, "unread for bob")
    await until(me_b, "room_activity")
    await sync_to_async(chat_services.room_update)(room_id=room.pk, actor=alice, name="renamed")
    for sock, owner, unread in ((me_a, True, 0), (me_b, False, 1)):
        updated = await until(sock, "room_updated", skip=("presence", "room_activity"))
        RoomUpdated(**updated)
        assert updated["room"]["name"] == "renamed"
        assert updated["room"]["is_owner"] is owner
        assert updated["room"]["unread_count"] == unread
        assert updated["room"]["last_message"]["message_id"] == message.pk

    session = await sync_to_async(services.session_start)(user=bob, room_id=room.pk)
    for sock, can_end in ((me_a, True), (me_b, True)):
        started = await until(sock, "session_started", skip=("presence", "room_activity"))
        SessionEvent(**started)
        assert started["session"]["session_id"] == str(session.pk)
        assert started["session"]["can_end"] is can_end
    room_sock = await ws(f"/ws/chat/{room.pk}/", bob)
    session_sock = await ws(f"/ws/llm/{session.pk}/", bob)
    await session_sock.recv_type("session_viewers")

    await sync_to_async(chat_services.room_delete)(room_id=room.pk, actor=alice)
    for sock in (me_a, me_b):
        removed = await until(sock, "room_removed", skip=("presence", "room_activity"))
        assert removed == {"type": "room_removed", "room_id": str(room.pk), "reason": "deleted"}
    assert await room_sock.closed_with() == 4404
    assert await session_sock.closed_with() == 4404
    # /ws/me/ stays open: it hears the next room.
    other = await sync_to_async(room_create)(owner=bob, name="next")
    assert (await until(me_b, "room_added"))["room"]["id"] == str(other.pk)


async def test_session_events_say_who_may_end(ws, room, alice, bob, carol, settings):
    settings.LLM_PROVIDER = "echo"
    await sync_to_async(room.participants.add)(carol)
    me_b = await ws("/ws/me/", bob)
    me_c = await ws("/ws/me/", carol)
    session = await sync_to_async(services.session_start)(user=carol, room_id=room.pk)
    assert (await until(me_b, "session_started"))["session"]["can_end"] is False
    assert (await until(me_c, "session_started"))["session"]["can_end"] is True
    await sync_to_async(services.session_deactivate)(session_id=session.pk, actor=alice)
    ended = await until(me_b, "session_ended")
    assert ended["session"]["is_active"] is False
    assert ended["session"]["can_end"] is False


async def test_presence_to_members_who_share_a_room_once(ws, room, alice, bob, make_user):
    # bob shares two rooms with alice; dave shares none.
    second = await sync_to_async(room_create)(owner=alice, name="second")
    await sync_to_async(second.participants.add)(bob)
    dave = await sync_to_async(make_user)("dave")
    me_b = await ws("/ws/me/", bob)
    me_d = await ws("/ws/me/", dave)
    alice_tab = await ws("/ws/me/", alice)
    online = await until(me_b, "presence", skip=())
    Presence(**online)
    assert online == {"type": "presence", "username": "alice", "online": True}
    # A second socket of alice's changes nothing; her last one closing does.
    alice_room = await ws(f"/ws/chat/{room.pk}/", alice)
    await alice_tab.disconnect()
    await alice_room.disconnect()
    assert await until(me_b, "presence", skip=()) == {
        "type": "presence",
        "username": "alice",
        "online": False,
    }
    # Told once although they share two rooms: the next frame is the sentinel.
    message = await say(room, bob, "sentinel")
    await say(room, alice, "for bob")
    frame = await me_b.recv()
    assert frame["type"] == "room_activity", frame
    assert frame["message_id"] > message.pk
    # dave, who shares no room with alice, heard none of it.
    own = await sync_to_async(room_create)(owner=dave, name="dave alone")
    assert (await me_d.recv())["type"] == "room_added"
    assert own.pk
    await sockets.drain_announcements()


async def test_moving_to_another_page_is_not_going_offline(ws, room, alice, bob, monkeypatch):
    monkeypatch.setattr(sockets, "OFFLINE_GRACE_SECONDS", 0.5)
    me_b = await ws("/ws/me/", bob)
    page = await ws(f"/ws/chat/{room.pk}/", alice)
    assert (await until(me_b, "presence", skip=()))["online"] is True
    # alice leaves one page for another: her sockets close and new ones open at once.
    await page.disconnect()
    page = await ws("/ws/me/", alice)
    await page.disconnect()
    # She is gone for good only now: once every announcement is out, bob has heard that she
    # went offline, once, with no offline-online pair for the move before it.
    await sockets.drain_announcements()
    sentinel = await say(room, alice, "sentinel")
    heard = []
    while (frame := await me_b.recv())["type"] != "room_activity":
        heard.append(frame)
    assert frame["message_id"] == sentinel.pk
    assert heard == [{"type": "presence", "username": "alice", "online": False}]


async def test_online_in_room_json(client_for, ws, room, alice, bob):
    c = await sync_to_async(client_for)(alice)
    body = (await sync_to_async(c.get)(f"/api/chat/rooms/{room.pk}/")).json()
    assert body["room"]["online"] == []
    sock = await ws(f"/ws/chat/{room.pk}/", bob)
    body = (await sync_to_async(c.get)(f"/api/chat/rooms/{room.pk}/")).json()
    assert body["room"]["online"] == ["bob"]
    await sock.disconnect()
    await sockets.drain_announcements()
    body = (await sync_to_async(c.get)(f"/api/chat/rooms/{room.pk}/")).json()
    assert body["room"]["online"] == []


async def test_typing_reaches_the_others_at_most_once_per_two_seconds(ws, room, alice, bob, carol):
    await sync_to_async(room.participants.add)(carol)
    a = await ws(f"/ws/chat/{room.pk}/", alice)
    a2 = await ws(f"/ws/chat/{room.pk}/", alice)
    b = await ws(f"/ws/chat/{room.pk}/", bob)
    c = await ws(f"/ws/chat/{room.pk}/", carol)
    await a.send_json_to({"type": "typing"})
    await b.send_json_to({"type": "typing"})
    # Both, gathered in one frame, the first heard first (the two sockets' throttle checks run
    # at once, so either may be heard first); each typist hears of the other only.
    frame = await c.recv()
    assert sorted(frame["usernames"]) == ["alice", "bob"]
    assert frame == {
        "type": "typing",
        "username": frame["usernames"][0],
        "usernames": frame["usernames"],
    }
    frame = await b.recv()
    Typing(**frame)
    assert frame == {"type": "typing", "username": "alice", "usernames": ["alice"]}
    assert await a.recv() == {"type": "typing", "username": "bob", "usernames": ["bob"]}
    assert await a2.recv() == {"type": "typing", "username": "bob", "usernames": ["bob"]}
    # Within 2 s of her last announcement alice's typing is dropped, on any of her sockets;
    # carol's is not: the next frame names carol alone.
    await a.send_json_to({"type": "typing"})
    await a2.send_json_to({"type": "typing"})
    await c.send_json_to({"type": "typing"})
    assert await b.recv() == {"type": "typing", "username": "carol", "usernames": ["carol"]}


async def test_a_message_ends_its_senders_typing(ws, room, alice, bob, carol):
    await sync_to_async(room.participants.add)(carol)
    a = await ws(f"/ws/chat/{room.pk}/", alice)
    b = await ws(f"/ws/chat/{room.pk}/", bob)
    c = await ws(f"/ws/chat/{room.pk}/", carol)
    await a.send_json_to({"type": "typing"})
    await a.send_json_to({"type": "chat_message", "message": "done typing"})
    assert (await b.recv())["type"] == "chat_message"
    await c.send_json_to({"type": "typing"})
    # carol's typing joins the batch alice's started: it names carol alone.
    assert await b.recv() == {"type": "typing", "username": "carol", "usernames": ["carol"]}


async def test_session_viewers_on_connect_and_on_every_change(ws, room, alice, bob, settings):
    settings.LLM_PROVIDER = "echo"
    session = await sync_to_async(services.session_start)(user=alice, room_id=room.pk)
    path = f"/ws/llm/{session.pk}/"
    a = await ws(path, alice)
    viewers = await a.recv_type("session_viewers")
    SessionViewers(**viewers)
    assert viewers == {"type": "session_viewers", "usernames": ["alice"]}
    b = await ws(path, bob)
    assert (await b.recv_type("session_viewers"))["usernames"] == ["alice", "bob"]
    assert (await a.recv_type("session_viewers"))["usernames"] == ["alice", "bob"]
    await b.disconnect()
    assert (await a.recv_type("session_viewers"))["usernames"] == ["alice"]


async def test_deleting_the_room_stops_a_reply_and_keeps_what_it_cost(
    ws, upstream, room, alice, bob
):
    from llm.generation import get_generator
    from llm.models import AiReply, LlmUsage
    from testkit.upstream import Behavior

    upstream.then(Behavior(text="x" * 400, chunk_chars=2, delay=0.02))
    session = await sync_to_async(services.session_start)(user=bob, room_id=room.pk)
    sock = await ws(f"/ws/llm/{session.pk}/", bob)
    await sock.send_json_to({"type": "chat_message", "message": "a long answer, please"})
    await sock.recv_type("ai_stream_delta")
    await sync_to_async(chat_services.room_delete)(room_id=room.pk, actor=alice)
    assert await sock.closed_with() == 4404
    # The reply stops (the provider call is cut) and its usage is recorded without the room.
    tasks = set(get_generator().tasks)
    assert tasks
    await asyncio.wait(tasks, timeout=5)
    usage = await sync_to_async(LlmUsage.objects.get)(user=bob)
    assert (usage.room_id, usage.session_id, usage.reply_id) == (None, None, None)
    assert usage.finish_reason == "stopped"
    assert usage.error_code == "room_deleted"
    assert not await sync_to_async(AiReply.objects.exists)()


@pytest.mark.usefixtures("presets")
async def test_a_change_of_settings_reaches_the_members_as_session_updated(
    client_for, ws, upstream, room, alice, bob, carol, make_user, settings
):
    import datetime as dt

    settings.LLM_MODELS = ["gpt-4o-mini", "local-model"]
    await sync_to_async(room.participants.add)(carol)
    dave = await sync_to_async(make_user)("dave")
    session = await sync_to_async(services.session_start)(user=bob, room_id=room.pk)
    me_a = await ws("/ws/me/", alice)
    me_b = await ws("/ws/me/", bob)
    me_c = await ws("/ws/me/", carol)
    me_d = await ws("/ws/me/", dave)
    c = await sync_to_async(client_for)(alice)
    r = await sync_to_async(c.patch)(
        f"/api/llm/sessions/{session.pk}/",
        data={"title": "release", "model": "local-model"},
        content_type="application/json",
    )
    assert r.status_code == 200, r.content
    # The room's owner (who changed it) and the session's creator may end and change it; carol
    # may not.
    for sock, allowed in ((me_a, True), (me_b, True), (me_c, False)):
        updated = await until(sock, "session_updated")
        SessionEvent(**updated)
        created_at = updated["session"].pop("created_at")
        assert dt.datetime.fromisoformat(created_at) == session.created_at
        assert updated == {
            "type": "session_updated",
            "session": {
                "session_id": str(session.pk),
                "room_uuid": str(room.pk),
                "room_name": "devs",
                "is_active": True,
                "created_by": "bob",
                "can_end": allowed,
                "title": "release",
                "model": "local-model",
                "persona": "developer-ko",
                "system_prompt": settings.LLM_SYSTEM_PROMPT,
                "can_edit": allowed,
            },
        }
    # dave, not a member of the room, heard nothing of it: his next frame is his own room's.
    own = await sync_to_async(room_create)(owner=dave, name="dave alone")
    assert (await until(me_d, "room_added", skip=()))["room"]["id"] == str(own.pk)
