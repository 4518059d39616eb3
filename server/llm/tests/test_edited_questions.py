"""The assistant and messages changed after they were sent (SPEC 9.4): its context uses edited
text and skips deleted messages; a reply to a question edited afterwards says so; a question
deleted while it waited is not asked."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from accounts.services import assistant_user
from chat.models import Message
from llm.models import AiReply
from llm.tests.test_flow import reply_frames, start_session
from testkit.upstream import Behavior

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = Behavior(text="".join(f"{n % 10}" for n in range(60)), chunk_chars=1, delay=0.05)


async def patch(client_for, user, message_id, text):
    client = await sync_to_async(client_for)(user)
    r = await sync_to_async(client.patch)(
        f"/api/chat/messages/{message_id}/", {"message": text}, content_type="application/json"
    )
    assert r.status_code == 200, r.json()
    return r.json()["message"]


async def delete(client_for, user, message_id):
    client = await sync_to_async(client_for)(user)
    r = await sync_to_async(client.delete)(f"/api/chat/messages/{message_id}/")
    assert r.status_code == 200, r.json()


async def queued_behind_a_long_reply(client_for, ws, upstream, room, user, text):
    """A socket on a new session whose first question is being answered slowly, and the id of
    `text`, asked next and waiting in the queue."""
    upstream.then(SLOW)
    session = await start_session(client_for, user, room)
    sock = await ws(f"/ws/llm/{session}/", user)
    await sock.send_json_to({"type": "chat_message", "message": "a long one"})
    await sock.recv_type("ai_stream_delta")
    await sock.send_json_to({"type": "chat_message", "message": text})
    return sock, (await sock.recv_type("chat_message"))["message_id"]


async def test_the_context_uses_edited_text_and_skips_deleted_messages(
    client_for, ws, upstream, room, alice, bob, settings
):
    settings.LLM_HISTORY_LIMIT = 2
    session = await start_session(client_for, alice, room)

    def seed():
        ai = assistant_user()
        said = [
            Message.objects.create(room=room, ai_session_id=session, sender=s, content=t)
            for s, t in ((alice, "first, with a typo"), (ai, "an answer"), (bob, "regret"))
        ]
        return [m.pk for m in said]

    first, _, regret = await sync_to_async(seed)()
    await patch(client_for, alice, first, "first, fixed")
    await delete(client_for, bob, regret)
    sock = await ws(f"/ws/llm/{session}/", alice)
    await sock.send_json_to({"type": "chat_message", "message": "go on"})
    await reply_frames(sock)
    sent = [m["content"] for m in upstream.requests[-1].body["messages"][1:]]
    # The deleted message takes no place among the last LLM_HISTORY_LIMIT.
    assert sent == ["alice: first, fixed", "an answer", "alice: go on"]


async def test_a_question_edited_while_answered_marks_its_reply(
    client_for, ws, upstream, room, alice, bob
):
    upstream.then(SLOW)
    session = await start_session(client_for, alice, room)
    a = await ws(f"/ws/llm/{session}/", alice)
    b = await ws(f"/ws/llm/{session}/", bob)
    await a.send_json_to({"type": "chat_message", "message": "what is 2+2?"})
    question = (await a.recv_type("chat_message"))["message_id"]
    await a.recv_type("ai_stream_delta")  # being answered now
    await patch(client_for, alice, question, "what is 3+3?")
    edited = await b.recv_type("message_edited")
    assert (edited["message_id"], edited["replies"]) == (question, [])
    final = (await reply_frames(b, wait=10))[-1]
    assert (final["is_ai"], final["reply_to_edited"]) == (True, True)
    # Asked once, with the text the question had then.
    assert [r.body["messages"][-1]["content"] for r in upstream.requests] == ["alice: what is 2+2?"]
    stored = await sync_to_async(Message.objects.get)(pk=final["message_id"])
    assert stored.reply_to_edited is True


async def test_a_question_edited_while_it_waits_is_asked_as_edited(
    client_for, ws, upstream, room, alice
):
    sock, waiting = await queued_behind_a_long_reply(
        client_for, ws, upstream, room, alice, "then this"
    )
    await patch(client_for, alice, waiting, "then that")
    first = await reply_frames(sock, wait=10)
    second = await reply_frames(sock, wait=10)
    assert first[-1]["reply_to_edited"] is False
    assert second[-1]["reply_to_edited"] is False
    assert upstream.requests[-1].body["messages"][-1]["content"] == "alice: then that"


async def test_a_question_deleted_while_it_waits_is_never_asked(
    client_for, ws, upstream, room, alice
):
    sock, waiting = await queued_behind_a_long_reply(
        client_for, ws, upstream, room, alice, "never mind this"
    )
    await delete(client_for, alice, waiting)
    await reply_frames(sock, wait=10)

    def status():
        return AiReply.objects.get(trigger_id=waiting).status

    for _ in range(100):
        if await sync_to_async(status)() != AiReply.Status.PENDING:
            break
        await asyncio.sleep(0.05)
    reply = await sync_to_async(AiReply.objects.get)(trigger_id=waiting)
    assert (reply.status, reply.error_code) == (AiReply.Status.CANCELLED, "message_deleted")
    assert len(upstream.requests) == 1


async def test_a_question_deleted_while_it_waits_leaves_the_queue_before_its_turn(
    client_for, ws, upstream, room, alice
):
    sock, waiting = await queued_behind_a_long_reply(
        client_for, ws, upstream, room, alice, "never mind this"
    )
    await delete(client_for, alice, waiting)
    # The next change of the queue, while the first reply is still being written: the deleted
    # question is not shown as waiting, the new one is.
    await sock.send_json_to({"type": "chat_message", "message": "and this"})
    asked = (await sock.recv_type("chat_message"))["message_id"]
    while True:
        queue = await sock.recv_type("ai_queue")
        if any(q["message_id"] == asked for q in queue["pending"]):
            break
    assert queue["generating"] is not None
    assert [q["message_id"] for q in queue["pending"]] == [asked]
    # Its turn comes after the first reply, and only the new question is asked.
    await reply_frames(sock, wait=10)
    await reply_frames(sock, wait=10)
    assert [r.body["messages"][-1]["content"] for r in upstream.requests] == [
        "alice: a long one",
        "alice: and this",
    ]
    reply = await sync_to_async(AiReply.objects.get)(trigger_id=waiting)
    assert (reply.status, reply.error_code) == (AiReply.Status.CANCELLED, "message_deleted")


async def test_editing_an_answered_question_names_its_reply_to_everyone(
    client_for, ws, upstream, room, alice, bob
):
    session = await start_session(client_for, alice, room)
    a = await ws(f"/ws/llm/{session}/", alice)
    b = await ws(f"/ws/llm/{session}/", bob)
    await a.send_json_to({"type": "chat_message", "message": "what is 2+2?"})
    question = (await a.recv_type("chat_message"))["message_id"]
    answer = (await reply_frames(a))[-1]["message_id"]
    await reply_frames(b)
    await a.send_json_to({"type": "chat_message", "message": "and 5+5?"})
    other = (await reply_frames(a))[-1]["message_id"]
    await reply_frames(b)
    await patch(client_for, alice, question, "what is 3+3?")
    # Every socket of the session hears it, with the one reply that answered the old text (not
    # the later question's).
    for sock in (a, b):
        edited = await sock.recv_type("message_edited")
        assert (edited["message_id"], edited["message"], edited["replies"]) == (
            question,
            "what is 3+3?",
            [answer],
        )
    client = await sync_to_async(client_for)(bob)
    r = await sync_to_async(client.get)(f"/api/llm/sessions/{session}/messages/")
    marked = {m["message_id"]: m["reply_to_edited"] for m in r.json()["messages"] if m["is_ai"]}
    assert marked == {answer: True, other: False}
