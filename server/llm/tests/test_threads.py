"""A reply knows its question (SPEC 10.2): `reply_to` and `model` on every reply frame and
history item, the queue of waiting questions and withdrawing one, regenerate and retry with
versions, and each reply's usage. Over the real stack and the real SDK, against the local
upstream."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message
from llm.models import AiReply, LlmUsage
from llm.tests.sessions import start_session
from llm.tests.steering import (
    asked,
    contents,
    is_reply,
    say,
    until,
    until_reply,
)
from testkit.upstream import Behavior

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = Behavior(text="".join(f"w{i:02d} " for i in range(40)), chunk_chars=4, delay=0.03)


async def join(ws, sid, *users):
    socks = []
    for user in users:
        sock = await ws(f"/ws/llm/{sid}/", user)
        await sock.recv_type("ai_joined")
        socks.append(sock)
    return socks


async def history(client_for, user, sid):
    c = await sync_to_async(client_for)(user)
    return (await sync_to_async(c.get)(f"/api/llm/sessions/{sid}/messages/")).json()["messages"]


def cost_text(prompt: int, completion: int) -> str:
    # gpt-4o-mini: $0.15 and $0.60 per million input and output tokens.
    cost = (Decimal(prompt) * Decimal("0.15") + Decimal(completion) * Decimal("0.60")) / 10**6
    return str(cost.quantize(Decimal("0.000001"), rounding=ROUND_CEILING))


async def test_every_reply_frame_and_history_item_names_its_question(
    client_for, ws, upstream, room, alice, bob
):
    upstream.then(SLOW, Behavior(text="4"), Behavior(text="and more"))
    sid = await start_session(client_for, alice, room)
    a, b = await join(ws, sid, alice, bob)
    q1 = await say(a, "explain the event loop at length")
    await a.recv_type("ai_stream_delta")
    q2 = await say(b, "what is 2+2?")
    q3 = await say(a, "and a follow-up")
    frames = await until(b, lambda f: is_reply(f) and f["reply_to"] == q3, wait=10)
    for kind in ("ai_thinking", "ai_stream_start", "ai_stream_end"):
        assert [f["reply_to"] for f in frames if f["type"] == kind][-2:] == [q2, q3], kind
    finals = [f for f in frames if is_reply(f)]
    assert [(f["reply_to"], f["message"]) for f in finals][-2:] == [(q2, "4"), (q3, "and more")]
    for f in frames:
        if f["type"] in ("ai_thinking", "ai_stream_start", "ai_stream_end") or is_reply(f):
            assert f["model"] == "gpt-4o-mini", f
    final = finals[-1]
    assert final["version"] == final["versions"] == 1
    assert final["finish_reason"] == "stop"
    assert final["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 2,
        "cost_usd": cost_text(11, 2),
        "estimated": False,
    }
    items = await history(client_for, bob, sid)
    answers = {m["reply_to"]: m for m in items if m["is_ai"]}
    assert set(answers) == {q1, q2, q3}
    assert answers[q1]["message"] == SLOW.text
    # History says of a reply what its final frame said; the frame alone names the message
    # before it (for catch-up), and history alone says it was never edited.
    assert answers[q3].pop("edited_at") is None
    assert answers[q3] == {k: v for k, v in final.items() if k not in ("type", "previous_id")}
    ids = [m["message_id"] for m in items]
    assert final["previous_id"] == ids[ids.index(final["message_id"]) - 1]
    for m in items:
        if not m["is_ai"]:
            assert {"reply_to", "usage", "version"}.isdisjoint(m)


async def test_the_queue_is_sent_whenever_it_changes(client_for, ws, upstream, room, alice, bob):
    upstream.then(SLOW, Behavior(text="b"), Behavior(text="c"))
    sid = await start_session(client_for, alice, room)
    a, b = await join(ws, sid, alice, bob)
    q1 = await say(a, "long one")
    await b.recv_type("ai_stream_delta")
    q2 = await say(b, "second")
    q3 = await say(a, "third")
    frames = await until(b, lambda f: is_reply(f) and f["reply_to"] == q3, wait=10)
    frames.append(await b.recv_type("ai_queue"))
    queues = [(f["generating"], f["pending"]) for f in frames if f["type"] == "ai_queue"]
    bob_q2 = {"message_id": q2, "username": "bob"}
    alice_q3 = {"message_id": q3, "username": "alice"}
    assert queues[-7:] == [
        (q1, [bob_q2]),
        (q1, [bob_q2, alice_q3]),
        (None, [bob_q2, alice_q3]),
        (q2, [alice_q3]),
        (None, [alice_q3]),
        (q3, []),
        (None, []),
    ]

    # A member who joins while a reply is written learns the queue and the question.
    upstream.then(SLOW)
    q4 = await say(a, "another long one")
    await a.recv_type("ai_stream_delta")
    late = await ws(f"/ws/llm/{sid}/", bob)
    await late.recv_type("ai_joined")
    queue = await late.recv()
    assert queue == {"type": "ai_queue", "generating": q4, "pending": []}
    start = await late.recv()
    assert start["type"] == "ai_stream_start"
    assert (start["reply_to"], start["model"]) == (q4, "gpt-4o-mini")
    assert start["text"]
    await until_reply(late, wait=10)


async def test_who_asked_withdraws_a_waiting_question_and_the_provider_never_hears_it(
    client_for, ws, upstream, room, alice, bob
):
    upstream.then(SLOW, Behavior(text="third answered"))
    sid = await start_session(client_for, alice, room)
    a, b = await join(ws, sid, alice, bob)
    q1 = await say(a, "long one")
    await a.recv_type("ai_stream_delta")
    q2 = await say(b, "WITHDRAWN QUESTION")

    await a.send_json_to({"type": "cancel_reply", "message_id": q2})
    refused = await a.recv_type("error")
    assert refused["code"] == "forbidden"
    await a.send_json_to({"type": "cancel_reply", "message_id": q1})
    assert (await a.recv_type("error"))["code"] == "validation_error"  # being answered: Stop
    await a.send_json_to({"type": "cancel_reply", "message_id": 10**9})
    assert (await a.recv_type("error"))["code"] == "not_found"

    await b.send_json_to({"type": "cancel_reply", "message_id": q2})
    queue = await until(a, lambda f: f["type"] == "ai_queue" and f["pending"] == [])
    assert queue[-1]["generating"] == q1
    await until_reply(a, wait=10)
    q3 = await say(a, "third")
    final = (await until_reply(a))[-1]
    assert (final["reply_to"], final["message"]) == (q3, "third answered")

    assert len(upstream.requests) == 2
    assert all("WITHDRAWN" not in c for c in contents(asked(upstream, 0)))
    # It stays as a message, in the context of later questions, with no reply.
    assert contents(asked(upstream))[-2:] == ["bob: WITHDRAWN QUESTION", "alice: third"]
    reply = await sync_to_async(AiReply.objects.get)(trigger_id=q2)
    assert (reply.status, reply.error_code, reply.reply_id) == ("cancelled", "withdrawn", None)
    items = await history(client_for, alice, sid)
    assert [m["message_id"] for m in items if m.get("reply_to") == q2] == []
    assert any(m["message_id"] == q2 for m in items)
    # Withdrawn is withdrawn: no one asks it again for its asker.
    await a.send_json_to({"type": "regenerate", "message_id": q2})
    assert (await a.recv_type("error"))["code"] == "validation_error"


async def test_stop_ends_the_reply_being_written_not_the_queue(
    client_for, ws, upstream, room, alice, bob
):
    upstream.then(SLOW, Behavior(text="still answered"))
    sid = await start_session(client_for, alice, room)
    a, b = await join(ws, sid, alice, bob)
    q1 = await say(a, "long one")
    await a.recv_type("ai_stream_delta")
    q2 = await say(b, "next")
    await b.send_json_to({"type": "stop_generation"})
    first = (await until_reply(a))[-1]
    assert (first["reply_to"], first["finish_reason"]) == (q1, "stopped")
    second = (await until_reply(a))[-1]
    assert (second["reply_to"], second["message"]) == (q2, "still answered")


async def test_regenerate_asks_again_with_the_context_the_question_had(
    client_for, ws, upstream, room, alice, bob
):
    upstream.then(
        Behavior(text="first answer"),
        Behavior(text="second answer"),
        Behavior(text="better first answer"),
        Behavior(text="third answer"),
    )
    sid = await start_session(client_for, alice, room)
    a, b = await join(ws, sid, alice, bob)
    q1 = await say(a, "q1")
    r1 = (await until_reply(a))[-1]
    q2 = await say(a, "q2")
    r2 = (await until_reply(a))[-1]

    await b.send_json_to({"type": "regenerate", "message_id": r1["message_id"]})
    frames = await until_reply(a)
    again = frames[-1]
    assert next(f for f in frames if f["type"] == "ai_thinking")["reply_to"] == q1
    assert (again["reply_to"], again["message"]) == (q1, "better first answer")
    assert (again["version"], again["versions"]) == (2, 2)
    assert len(upstream.requests) == 3  # one provider call for one regenerate
    # Asked with the context the question had when first asked: nothing said after it.
    assert asked(upstream, 2)["messages"] == asked(upstream, 0)["messages"]
    regenerated = await sync_to_async(AiReply.objects.get)(reply_id=again["message_id"])
    assert regenerated.requested_by_id == bob.pk

    items = {m["message_id"]: m for m in await history(client_for, alice, sid)}
    assert (items[r1["message_id"]]["version"], items[r1["message_id"]]["versions"]) == (1, 2)
    assert (items[again["message_id"]]["version"], items[again["message_id"]]["versions"]) == (2, 2)
    assert items[r2["message_id"]]["reply_to"] == q2

    # A later question sees the answer now shown, not the one it replaced.
    await say(a, "q3")
    await until_reply(a)
    assert contents(asked(upstream))[1:] == [
        "alice: q1",
        "better first answer",
        "alice: q2",
        "second answer",
        "alice: q3",
    ]


async def test_retry_of_a_failed_or_stopped_reply(client_for, ws, upstream, room, alice):
    upstream.then(Behavior(status=500), SLOW, Behavior(text="worked"), Behavior(text="whole"))
    sid = await start_session(client_for, alice, room)
    (a,) = await join(ws, sid, alice)
    q1 = await say(a, "flaky")
    end = await a.recv_type("ai_stream_end")
    assert (end["reply_to"], end["message_id"], end["finish_reason"]) == (q1, None, "error")
    assert (await a.recv_type("ai_error"))["code"] == "upstream_unavailable"
    # No reply was saved: the question itself is retried.
    await a.send_json_to({"type": "regenerate", "message_id": q1})
    await a.recv_type("ai_stream_delta")
    await a.send_json_to({"type": "stop_generation"})
    stopped = (await until_reply(a))[-1]
    assert (stopped["reply_to"], stopped["finish_reason"], stopped["version"]) == (q1, "stopped", 1)
    await a.send_json_to({"type": "regenerate", "message_id": stopped["message_id"]})
    worked = (await until_reply(a))[-1]
    assert (worked["message"], worked["version"], worked["versions"]) == ("worked", 2, 2)
    assert len(upstream.requests) == 3

    # Asking again while an answer is being written is refused, not queued twice.
    upstream.then(SLOW)
    await a.send_json_to({"type": "regenerate", "message_id": worked["message_id"]})
    await a.recv_type("ai_stream_delta")
    await a.send_json_to({"type": "regenerate", "message_id": worked["message_id"]})
    assert (await a.recv_type("error"))["code"] == "validation_error"
    third = (await until_reply(a, wait=10))[-1]
    assert (third["version"], third["versions"]) == (3, 3)
    assert len(upstream.requests) == 4


@pytest.mark.parametrize("target", ["note", "room chat", "another session", "garbage"])
async def test_only_a_reply_or_question_of_this_conversation_is_asked_again(
    client_for, ws, upstream, room, alice, target
):
    sid = await start_session(client_for, alice, room)
    other = await start_session(client_for, alice, room)
    (a,) = await join(ws, sid, alice)
    (o,) = await join(ws, other, alice)
    await say(o, "elsewhere")
    elsewhere = (await until_reply(o))[-1]["message_id"]
    chat = await sync_to_async(Message.objects.create)(room=room, sender=alice, content="chat")
    c = await sync_to_async(client_for)(alice)
    await sync_to_async(c.patch)(
        f"/api/llm/sessions/{sid}/", data={"title": "t"}, content_type="application/json"
    )
    note = (await a.recv_type("chat_message"))["message_id"]
    ids = {"note": note, "room chat": chat.pk, "another session": elsewhere, "garbage": "7"}
    await a.send_json_to({"type": "regenerate", "message_id": ids[target]})
    error = await a.recv_type("error")
    assert error["code"] == ("validation_error" if target == "garbage" else "not_found")
    assert len(upstream.requests) == 1


async def test_regenerate_counts_against_the_rate_and_the_budget(
    client_for, ws, upstream, room, alice, bob, settings
):
    settings.LLM_USER_RATE = "2/minute"
    settings.LLM_USER_DAILY_TOKEN_BUDGET = 5000
    sid = await start_session(client_for, alice, room)
    a, b = await join(ws, sid, alice, bob)
    await say(a, "question")
    r1 = (await until_reply(a))[-1]
    await a.send_json_to({"type": "regenerate", "message_id": r1["message_id"]})
    await until_reply(a)
    await a.send_json_to({"type": "regenerate", "message_id": r1["message_id"]})
    limited = await a.recv_type("ai_error")
    assert limited["code"] == "rate_limited"
    assert limited["retry_after"] >= 1
    assert len(upstream.requests) == 2

    # Bob's budget is spent: his regenerate is refused before any call, and says why.
    await sync_to_async(LlmUsage.objects.create)(
        provider="openai",
        model="gpt-4o-mini",
        user=bob,
        room=room,
        prompt_tokens=5000,
        completion_tokens=0,
        total_tokens=5000,
        finish_reason="stop",
    )
    await b.send_json_to({"type": "regenerate", "message_id": r1["message_id"]})
    refused = await a.recv_type("ai_error")
    assert refused["code"] == "budget_exceeded"
    assert len(upstream.requests) == 2
    assert await sync_to_async(Message.objects.filter(ai_session_id=sid).count)() == 3


async def test_a_reply_without_usage_from_the_provider_is_marked_estimated(
    client_for, ws, upstream, room, alice
):
    upstream.then(Behavior(text="no usage chunk", usage=False))
    sid = await start_session(client_for, alice, room)
    (a,) = await join(ws, sid, alice)
    await say(a, "hello")
    final = (await until_reply(a))[-1]
    assert final["usage"]["estimated"] is True
    items = await history(client_for, alice, sid)
    assert items[-1]["usage"] == final["usage"]


async def test_a_question_asked_again_waits_behind_those_asked_before(
    client_for, ws, upstream, room, alice, bob
):
    upstream.then(Behavior(text="one"), SLOW, Behavior(text="three"), Behavior(text="one again"))
    sid = await start_session(client_for, alice, room)
    a, b = await join(ws, sid, alice, bob)
    q1 = await say(a, "first")
    r1 = (await until_reply(a))[-1]
    q2 = await say(a, "second, slow")
    await a.recv_type("ai_stream_delta")
    q3 = await say(b, "third")
    await b.send_json_to({"type": "regenerate", "message_id": r1["message_id"]})
    queue = await until(a, lambda f: f["type"] == "ai_queue" and len(f["pending"]) == 2)
    assert queue[-1]["pending"] == [
        {"message_id": q3, "username": "bob"},
        {"message_id": q1, "username": "bob"},
    ]
    frames = await until(a, lambda f: is_reply(f) and f["message"] == "one again", wait=10)
    answered = [f["reply_to"] for f in frames if is_reply(f)]
    assert answered == [q2, q3, q1]
