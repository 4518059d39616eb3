"""Steering the assistant across server processes (SPEC 10 with 4.4): a room-chat mention
answered on one process and seen on the other, a withdrawn question that never reaches the
provider, and a question asked again on both at once that is answered once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from chat.models import Message
from llm.models import AiReply
from llm.tests.steering import say, until
from testkit.upstream import Behavior

from .test_scaleout import LONG_TEXT, Peer, make_room, start_session, stream_text

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]


def replies_to(question: int) -> Any:
    return lambda f: f["type"] == "chat_message" and f["is_ai"] and f["reply_to"] == question


async def settled(cluster: Any, conversation: str, within: float = 10) -> None:
    """Wait until no process generates replies in `conversation` (`room:<hex>` or
    `session:<hex>`): its generation lock is released once the last reply is saved and the
    queue found empty. Until then a server may still be in a transaction, which the test's
    flush of the database would deadlock with."""
    import redis.asyncio as redis

    key = f"{cluster.env['CHANNEL_PREFIX']}:llm:lock:{conversation}"
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        async with asyncio.timeout(within):
            while await client.exists(key):  # noqa: ASYNC110 - the state is in Redis
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def test_a_room_chat_mention_answered_on_one_process_is_seen_on_the_other(
    cluster, upstream, peers
):
    upstream.reset(Behavior(text=LONG_TEXT[:120], chunk_chars=3, delay=0.01))
    a, b = cluster.processes[:2]
    room, cookies = await make_room("alice", "bob")
    path = f"/ws/chat/{room}/"
    alice_a = await peers(a, path, cookies["alice"])
    bob_b = await peers(b, path, cookies["bob"])

    question = await say(alice_a, "@AI_Assistant 배포 순서 정리해줘")
    seen_b = await until(bob_b, replies_to(question))
    seen_a = await until(alice_a, replies_to(question))
    for frames in (seen_a, seen_b):
        assert stream_text(frames) == upstream.default.text
        assert frames[-1]["message"] == upstream.default.text
        kinds = {f["type"]: f for f in frames}
        for kind in ("ai_thinking", "ai_stream_start", "ai_stream_end"):
            assert kinds[kind]["reply_to"] == question
    assert len(upstream.requests) == 1
    sent = upstream.requests[0].body
    assert sent["messages"] == [
        {"role": "system", "content": settings.LLM_SYSTEM_PROMPT},
        {"role": "user", "content": "alice: @AI_Assistant 배포 순서 정리해줘"},
    ]
    assert sent["model"] == "gpt-4o-mini"
    await settled(cluster, f"room:{room.replace('-', '')}")


async def test_a_withdrawn_question_never_reaches_the_provider(cluster, upstream, peers):
    upstream.reset(Behavior(text=LONG_TEXT[:40], chunk_chars=4))
    upstream.then(Behavior(text=LONG_TEXT, chunk_chars=4, delay=0.03))
    a, b = cluster.processes[:2]
    room, cookies = await make_room("alice", "bob")
    session = await start_session(a, cookies["alice"], room)
    path = f"/ws/llm/{session}/"
    alice_a = await peers(a, path, cookies["alice"])
    bob_b = await peers(b, path, cookies["bob"])
    for peer in (alice_a, bob_b):
        await peer.recv_type("ai_joined")

    first = await say(alice_a, "a long answer, please")
    await bob_b.recv_type("ai_stream_delta")
    waiting = await say(bob_b, "NEVER ASK THIS")
    queued = await until(
        alice_a, lambda f: f["type"] == "ai_queue" and f["generating"] == first and f["pending"]
    )
    assert queued[-1]["pending"] == [{"message_id": waiting, "username": "bob"}]
    await bob_b.send(type="cancel_reply", message_id=waiting)
    emptied = await until(alice_a, lambda f: f["type"] == "ai_queue" and not f["pending"])
    assert emptied[-1]["generating"] == first
    await until(alice_a, replies_to(first))
    after = await say(bob_b, "the next one")
    await until(alice_a, replies_to(after))

    assert len(upstream.requests) == 2
    assert [r.body["messages"][-1]["content"] for r in upstream.requests] == [
        "alice: a long answer, please",
        "bob: the next one",
    ]
    withdrawn = await sync_to_async(AiReply.objects.get)(trigger_id=waiting)
    assert (withdrawn.status, withdrawn.error_code) == ("cancelled", "withdrawn")
    assert await sync_to_async(Message.objects.filter(pk=waiting).exists)()
    await settled(cluster, f"session:{session.replace('-', '')}")


async def test_asked_again_on_both_processes_at_once_is_answered_once(cluster, upstream, peers):
    upstream.reset(Behavior(text="answer", chunk_chars=3))
    a, b = cluster.processes[:2]
    room, cookies = await make_room("alice", "bob")
    session = await start_session(a, cookies["alice"], room)
    path = f"/ws/llm/{session}/"
    alice_a = await peers(a, path, cookies["alice"])
    bob_b = await peers(b, path, cookies["bob"])
    for peer in (alice_a, bob_b):
        await peer.recv_type("ai_joined")
    question = await say(alice_a, "once")
    reply = (await until(alice_a, replies_to(question)))[-1]
    await until(bob_b, replies_to(question))

    upstream.default = Behavior(text="again", chunk_chars=3, first_delay=0.3)
    await asyncio.gather(
        alice_a.send(type="regenerate", message_id=reply["message_id"]),
        bob_b.send(type="regenerate", message_id=reply["message_id"]),
    )
    seen = await until(
        alice_a, lambda f: replies_to(question)(f) and f["message_id"] != reply["message_id"]
    )
    again = seen[-1]
    assert (again["message"], again["version"], again["versions"]) == ("again", 2, 2)
    before = [f for f in seen if f["type"] == "error"]
    refusals = before + await errors_so_far(alice_a) + await errors_so_far(bob_b)
    assert [(f["code"], "already being answered" in f["message"]) for f in refusals] == [
        ("validation_error", True)
    ]
    assert len(upstream.requests) == 2
    await settled(cluster, f"session:{session.replace('-', '')}")


async def errors_so_far(peer: Peer) -> list[dict[str, Any]]:
    """The error frames a peer got before it asks for one more (a question that is not
    waiting: `not_found`), which comes after every answer to what it sent before."""
    await peer.send(type="cancel_reply", message_id=1)
    frames = await until(peer, lambda f: f.get("code") == "not_found")
    return [f for f in frames[:-1] if f["type"] == "error"]
