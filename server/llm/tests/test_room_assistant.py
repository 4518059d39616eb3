"""The assistant in room chat (SPEC 10.3): `@AI_Assistant` is answered in the room, on the room
socket, with the room's recent chat as context and the default persona; the owner's switch;
stop, order, rate limits and budgets as in a session."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.models import ChatRoom, Message
from llm.models import AiReply, LlmUsage, Persona
from llm.services import persona_save
from llm.tests.steering import asked, contents, is_reply, say, until, until_reply
from testkit.upstream import Behavior

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("presets")]

SLOW = Behavior(text="".join(f"r{i:02d} " for i in range(40)), chunk_chars=4, delay=0.03)


async def room_socket(ws, room, user):
    return await ws(f"/ws/chat/{room.pk}/", user)


async def test_a_mention_is_answered_in_the_room_with_the_rooms_recent_chat(
    client_for, ws, upstream, room, alice, bob, settings
):
    def earlier():
        from llm.models import AiChatSession

        session = AiChatSession.objects.create(room=room, created_by=alice, model="gpt-4o-mini")
        Message.objects.create(room=room, ai_session=session, sender=bob, content="SESSION ONLY")
        for i in range(12):
            Message.objects.create(room=room, sender=alice if i % 2 else bob, content=f"chat {i}")

    await sync_to_async(earlier)()
    a = await room_socket(ws, room, alice)
    b = await room_socket(ws, room, bob)
    question = await say(b, "@AI_Assistant what did we decide?")
    frames = await until_reply(a)
    types = [f["type"] for f in frames]
    assert (
        types.index("ai_thinking") < types.index("ai_stream_start") < types.index("ai_stream_end")
    )
    for f in frames:
        if f["type"] in ("ai_thinking", "ai_stream_start", "ai_stream_end") or is_reply(f):
            assert f["reply_to"] == question, f
    final = frames[-1]
    assert (final["username"], final["message"]) == ("AI_Assistant", upstream.default.text)
    assert final["model"] == "gpt-4o-mini"
    sent = asked(upstream)
    assert sent["model"] == "gpt-4o-mini"
    assert sent["max_completion_tokens"] == settings.LLM_MAX_OUTPUT_TOKENS
    assert sent["messages"][0] == {"role": "system", "content": settings.LLM_SYSTEM_PROMPT}
    assert contents(sent)[1:] == [
        *[f"{'alice' if i % 2 else 'bob'}: chat {i}" for i in range(2, 12)],
        "bob: @AI_Assistant what did we decide?",
    ]
    # Room history says which question the reply answers, like a session's.
    c = await sync_to_async(client_for)(alice)
    items = (await sync_to_async(c.get)(f"/api/chat/rooms/{room.pk}/messages/")).json()["messages"]
    assert items[-1]["reply_to"] == question
    assert items[-1]["usage"]["estimated"] is False
    usage = await sync_to_async(LlmUsage.objects.get)()
    assert (usage.room_id, usage.session_id, usage.user_id) == (room.pk, None, bob.pk)


@pytest.mark.parametrize(
    "text",
    [
        "@ai_assistant hi",
        "hey @AI_Assistant.",
        "(@AI_Assistant) please",
        "@ＡＩ_Assistant full-width",
    ],
)
async def test_every_spelling_of_the_mention_asks(ws, upstream, room, alice, text):
    a = await room_socket(ws, room, alice)
    question = await say(a, text)
    assert (await until_reply(a))[-1]["reply_to"] == question


async def test_the_room_answers_in_the_default_persona(ws, upstream, room, alice, two_presets):
    a = await room_socket(ws, room, alice)
    await say(a, "@AI_Assistant hello")
    await until_reply(a)
    assert asked(upstream)["messages"][0] == {"role": "system", "content": "Room voice."}


@pytest.fixture
def two_presets(db):
    persona_save(
        persona=Persona(key="room", name="Room", system_prompt="Room voice.", is_default=True)
    )


async def test_without_a_mention_or_with_the_switch_off_nothing_is_asked(
    client_for, ws, upstream, room, alice, bob
):
    a = await room_socket(ws, room, alice)
    b = await room_socket(ws, room, bob)
    await say(a, "no mention here, AI_Assistant; mail ai@AI_Assistant.example")
    owner = await sync_to_async(client_for)(alice)
    member = await sync_to_async(client_for)(bob)

    def set_mentions(client, on):
        return client.patch(
            f"/api/chat/rooms/{room.pk}/", data={"ai_mentions": on}, content_type="application/json"
        )

    refused = await sync_to_async(set_mentions)(member, False)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    r = await sync_to_async(set_mentions)(owner, False)
    assert r.status_code == 200
    assert r.json()["room"]["ai_mentions"] is False
    told = await b.recv_type("room_settings")
    assert told == {
        "type": "room_settings",
        "room_id": str(room.pk),
        "ai_mentions": False,
        "username": "alice",
    }
    await say(b, "@AI_Assistant are you there?")
    r = await sync_to_async(set_mentions)(owner, True)
    assert r.json()["room"]["ai_mentions"] is True
    question = await say(b, "@AI_Assistant now?")
    assert (await until_reply(a))[-1]["reply_to"] == question
    assert len(upstream.requests) == 1
    assert await sync_to_async(AiReply.objects.count)() == 1
    detail = await sync_to_async(owner.get)(f"/api/chat/rooms/{room.pk}/")
    assert detail.json()["room"]["ai_mentions"] is True


async def test_questions_in_a_room_are_answered_one_at_a_time_in_order(
    ws, upstream, room, alice, bob
):
    upstream.then(SLOW, Behavior(text="second"))
    a = await room_socket(ws, room, alice)
    b = await room_socket(ws, room, bob)
    q1 = await say(a, "@AI_Assistant first")
    await b.recv_type("ai_stream_delta")
    q2 = await say(b, "@AI_Assistant second")
    queue = await b.recv_type("ai_queue")
    assert queue == {
        "type": "ai_queue",
        "generating": q1,
        "pending": [{"message_id": q2, "username": "bob"}],
    }
    frames = await until(b, lambda f: is_reply(f) and f["reply_to"] == q2, wait=10)
    ends = [f for f in frames if f["type"] == "ai_stream_end"]
    assert [e["reply_to"] for e in ends] == [q1, q2]
    assert upstream.requests[1].received_at >= upstream.requests[0].first_chunk_at
    assert contents(asked(upstream))[-3:] == [
        "alice: @AI_Assistant first",
        SLOW.text,
        "bob: @AI_Assistant second",
    ]


async def test_stop_and_regenerate_work_on_the_room_socket(ws, upstream, room, alice, bob):
    upstream.then(SLOW, Behavior(text="again"))
    a = await room_socket(ws, room, alice)
    b = await room_socket(ws, room, bob)
    question = await say(a, "@AI_Assistant long please")
    await a.recv_type("ai_stream_delta")
    await b.send_json_to({"type": "stop_generation"})
    stopped = (await until_reply(a))[-1]
    assert (stopped["reply_to"], stopped["finish_reason"]) == (question, "stopped")
    await b.send_json_to({"type": "regenerate", "message_id": stopped["message_id"]})
    again = (await until_reply(a))[-1]
    assert (again["message"], again["version"], again["versions"]) == ("again", 2, 2)


async def test_a_mention_counts_against_the_ai_rate_and_is_refused_whole(
    ws, upstream, room, alice, settings
):
    settings.LLM_USER_RATE = "1/minute"
    a = await room_socket(ws, room, alice)
    await say(a, "@AI_Assistant one")
    await until_reply(a)
    await a.send_json_to({"type": "chat_message", "message": "@AI_Assistant two"})
    limited = await a.recv_type("error")
    assert limited["code"] == "rate_limited"
    assert limited["retry_after"] >= 1
    # Plain chat is not an AI request: it still goes through.
    await say(a, "plain chat")
    texts = await sync_to_async(
        lambda: list(Message.objects.filter(room=room).values_list("content", flat=True))
    )()
    assert "@AI_Assistant two" not in texts
    assert len(upstream.requests) == 1


async def test_over_budget_the_room_is_told_and_the_message_stays(
    ws, upstream, room, alice, bob, settings
):
    settings.LLM_USER_DAILY_TOKEN_BUDGET = 100
    b = await room_socket(ws, room, bob)
    a = await room_socket(ws, room, alice)
    await say(a, "@AI_Assistant a long question that will not fit the budget")
    error = await b.recv_type("ai_error")
    assert error["code"] == "budget_exceeded"
    assert upstream.requests == []
    assert await sync_to_async(Message.objects.filter(room=room).count)() == 1


def test_the_room_json_carries_the_switch(client_for, room, alice):
    body = client_for(alice).get(f"/api/chat/rooms/{room.pk}/").json()["room"]
    assert body["ai_mentions"] is True
    ChatRoom.objects.filter(pk=room.pk).update(ai_mentions=False)
    rooms = client_for(alice).get("/api/chat/my-rooms/").json()["rooms"]
    assert rooms[0]["ai_mentions"] is False


async def test_a_late_joiner_gets_the_room_reply_so_far_and_the_asker_may_leave(
    ws, upstream, room, alice, bob
):
    upstream.then(SLOW)
    a = await room_socket(ws, room, alice)
    question = await say(a, "@AI_Assistant long please")
    await a.recv_type("ai_stream_delta")
    await a.disconnect()  # the asker leaves: the reply goes on for the others
    late = await room_socket(ws, room, bob)
    queue = await late.recv()
    assert queue == {"type": "ai_queue", "generating": question, "pending": []}
    start = await late.recv()
    assert (start["type"], start["reply_to"]) == ("ai_stream_start", question)
    assert SLOW.text.startswith(start["text"])
    assert start["text"]
    text = start["text"]
    for frame in await until_reply(late, wait=10):
        if frame["type"] == "ai_stream_delta":
            text += frame["delta"]
    assert text == SLOW.text
    stored = await sync_to_async(Message.objects.get)(ai_reply__trigger_id=question)
    assert stored.content == SLOW.text


@pytest.mark.parametrize(
    ("behavior", "code"),
    [
        (Behavior(status=500), "upstream_unavailable"),
        (Behavior(status=429, retry_after=3), "upstream_rate_limited"),
        (Behavior(text="partial answer", chunk_chars=3, cut_after=2), "upstream_unavailable"),
    ],
)
async def test_an_upstream_failure_in_room_chat_gets_its_code_and_keeps_the_question(
    ws, upstream, room, alice, bob, behavior, code
):
    upstream.then(behavior)
    a = await room_socket(ws, room, alice)
    b = await room_socket(ws, room, bob)
    question = await say(a, "@AI_Assistant will this work?")
    end = await b.recv_type("ai_stream_end")
    assert (end["reply_to"], end["finish_reason"]) == (question, "error")
    assert (await b.recv_type("ai_error"))["code"] == code
    assert await sync_to_async(Message.objects.filter(pk=question).exists)()
    # The room goes on: the next mention is answered (a cut stream's partial text came first).
    again = await say(b, "@AI_Assistant and now?")
    answered = await until(a, lambda f: is_reply(f) and f["reply_to"] == again)
    assert answered[-1]["message"] == upstream.default.text


async def activity(sock):
    """The next `room_activity` of a `/ws/me/` socket; only presence may come before it."""
    frames = await until(sock, lambda f: f["type"] == "room_activity")
    assert {f["type"] for f in frames[:-1]} <= {"presence"}, frames
    return frames[-1]


async def test_the_rooms_reply_is_room_activity_for_every_member(
    ws, upstream, room, alice, bob, carol
):
    answer = "Tuesday at 10, after the freeze."
    upstream.then(Behavior(text=answer))
    await sync_to_async(room.participants.add)(carol)
    me_a = await ws("/ws/me/", alice)
    me_b = await ws("/ws/me/", bob)
    me_c = await ws("/ws/me/", carol)
    b = await room_socket(ws, room, bob)
    question = await say(b, "@AI_Assistant when is the release?")
    reply = (await until_reply(b))[-1]
    assert reply["message"] == answer

    def expected(unread):
        return {
            "type": "room_activity",
            "room_id": str(room.pk),
            "message_id": reply["message_id"],
            "username": "AI_Assistant",
            "preview": answer,
            "timestamp": reply["timestamp"],
            "unread_count": unread,
            "mention": False,
        }

    # The others heard the question, then the reply; the asker hears the reply alone.
    for sock in (me_a, me_c):
        heard = await activity(sock)
        assert (heard["message_id"], heard["username"], heard["unread_count"]) == (
            question,
            "bob",
            1,
        )
        assert await activity(sock) == expected(2)
    assert await activity(me_b) == expected(1)
    # Once: the next activity bob hears is a later message's.
    a = await room_socket(ws, room, alice)
    later = await say(a, "thanks")
    heard = await activity(me_b)
    assert (heard["message_id"], heard["unread_count"]) == (later, 2)


async def test_the_assistants_reply_mentions_nobody(ws, upstream, room, alice, bob, carol):
    # Model output is not a member's word: a reply that writes "@carol" pings no one.
    answer = "@carol knows the release date."
    upstream.then(Behavior(text=answer))
    await sync_to_async(room.participants.add)(carol)
    me_c = await ws("/ws/me/", carol)
    b = await room_socket(ws, room, bob)
    await say(b, "@AI_Assistant who knows the release date?")
    reply = (await until_reply(b))[-1]
    assert (reply["message"], reply["mentions"]) == (answer, [])
    await activity(me_c)  # bob's question
    heard = await activity(me_c)
    assert (heard["message_id"], heard["mention"], heard["unread_count"]) == (
        reply["message_id"],
        False,
        2,
    )
