"""Replies left behind by a stopped or killed process, and a graceful shutdown."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message
from llm import generation
from llm.models import AiChatSession, AiReply
from testkit.upstream import Behavior

pytestmark = pytest.mark.django_db(transaction=True)


def _leftovers(room, alice):
    """A session as a killed process leaves it: one reply half-streamed, one queued."""
    session = AiChatSession.objects.create(room=room, created_by=alice, model="gpt-4o-mini")
    first = Message.objects.create(room=room, ai_session=session, sender=alice, content="first")
    second = Message.objects.create(room=room, ai_session=session, sender=alice, content="second")
    streaming = AiReply.objects.create(
        room=room,
        session=session,
        trigger=first,
        requested_by=alice,
        status="streaming",
        checkpoint="Half an ans",
    )
    queued = AiReply.objects.create(room=room, session=session, trigger=second, requested_by=alice)
    return session, streaming, queued


async def test_start_up_closes_interrupted_replies_and_resumes_queued_ones(upstream, room, alice):
    _, streaming, queued = await sync_to_async(_leftovers)(room, alice)
    assert await generation.get_generator().resume() == 1
    for _ in range(300):
        await asyncio.sleep(0.02)
        if (await sync_to_async(AiReply.objects.get)(pk=queued.pk)).status == "done":
            break
    interrupted = await sync_to_async(AiReply.objects.select_related("reply").get)(pk=streaming.pk)
    assert interrupted.status == "interrupted"
    assert interrupted.finish_reason == "interrupted"
    assert interrupted.reply.content == "Half an ans"
    resumed = await sync_to_async(AiReply.objects.select_related("reply").get)(pk=queued.pk)
    assert resumed.status == "done"
    assert resumed.reply.content == upstream.default.text
    assert len(upstream.requests) == 1


async def test_shutdown_lets_short_replies_finish_and_stops_long_ones(
    client_for, ws, upstream, room, alice
):
    upstream.then(Behavior(text="z" * 600, chunk_chars=2, delay=0.02), Behavior(text="never asked"))
    c = await sync_to_async(client_for)(alice)
    sid = (
        await sync_to_async(c.post_json)("/api/llm/start_session/", {"room_uuid": str(room.pk)})
    ).json()["session_id"]
    sock = await ws(f"/ws/llm/{sid}/", alice)
    await sock.send_json_to({"type": "chat_message", "message": "long"})
    await sock.send_json_to({"type": "chat_message", "message": "queued"})
    await sock.recv_type("ai_stream_delta")
    generator = generation.get_generator()
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await generator.shutdown(grace=0.3)
        assert loop.time() - began < 3
        end = await sock.recv_type("ai_stream_end")
        assert end["finish_reason"] == "stopped"
        replies = await sync_to_async(
            lambda: list(AiReply.objects.order_by("id").values_list("status", flat=True))
        )()
        # The long one stopped with its text saved; the queued one waits for the next process.
        assert replies == ["stopped", "pending"]
        assert len(upstream.requests) == 1
    finally:
        # This test's process lives on: let the queued reply run before the test ends.
        generator.stopping = False
        generator.kick(uuid.UUID(sid))
