"""Every way the provider can fail becomes an ai_error code; the session keeps working."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message
from llm.models import AiReply, LlmUsage
from llm.tests.sessions import open_session
from testkit.upstream import Behavior

pytestmark = pytest.mark.django_db(transaction=True)


async def failed_reply(sock):
    frames = []
    while True:
        f = await sock.recv(6)
        frames.append(f)
        if f["type"] == "ai_error":
            return frames


@pytest.mark.parametrize(
    ("behavior", "code"),
    [
        (Behavior(status=429, retry_after=1), "upstream_rate_limited"),
        (Behavior(status=500), "upstream_unavailable"),
        (Behavior(status=503), "upstream_unavailable"),
        (Behavior(hang=True), "upstream_timeout"),
        (Behavior(stall_after=2), "upstream_timeout"),
        (Behavior(cut_after=2), "upstream_unavailable"),
        (Behavior(malformed_after=2), "upstream_unavailable"),
    ],
    ids=["429", "500", "503", "hang", "stall-mid-stream", "cut-mid-stream", "malformed-event"],
)
async def test_upstream_failure_codes(
    client_for, ws, upstream, room, alice, behavior, code, settings
):
    settings.LLM_TIMEOUT_SECONDS = 0.5
    upstream.then(behavior)
    session, sock = await open_session(client_for, ws, alice, room)
    await sock.send_json_to({"type": "chat_message", "message": "hello"})
    frames = await failed_reply(sock)
    err = frames[-1]
    assert err["code"] == code
    assert err["message"] == "AI 응답 생성 중 오류가 발생했습니다."
    end = next(f for f in frames if f["type"] == "ai_stream_end")
    assert end["finish_reason"] == "error"
    # The member's message stays saved; any streamed text is saved and marked.
    assert (
        await sync_to_async(Message.objects.filter(content="hello", ai_session_id=session).count)()
        == 1
    )
    reply = await sync_to_async(AiReply.objects.get)(session_id=session)
    assert reply.status == "failed"
    assert reply.error_code == code
    if behavior.stall_after or behavior.cut_after or behavior.malformed_after:
        streamed = "".join(f["delta"] for f in frames if f["type"] == "ai_stream_delta")
        assert streamed == upstream.default.text[:8]
        saved = await sync_to_async(
            lambda: reply.reply and Message.objects.get(pk=reply.reply_id).content
        )()
        assert saved == streamed
    usage = await sync_to_async(LlmUsage.objects.get)(reply=reply)
    assert usage.error_code == code
    assert usage.estimated is True
    assert usage.prompt_tokens > 0
    # The session keeps working.
    await sock.send_json_to({"type": "chat_message", "message": "again"})
    final = await sock.recv_type("ai_stream_end")
    assert final["finish_reason"] == "stop"


async def test_bad_key_is_upstream_auth(client_for, ws, upstream, room, alice, settings):
    settings.OPENAI_API_KEY = "sk-wrong-0123456789abcdefghij"
    from llm.providers.openai import reset_clients

    reset_clients()
    _, sock = await open_session(client_for, ws, alice, room)
    await sock.send_json_to({"type": "chat_message", "message": "hello"})
    err = (await failed_reply(sock))[-1]
    assert err["code"] == "upstream_auth"
    assert "sk-wrong" not in str(err)


async def test_no_usage_chunk_is_recorded_as_unknown(client_for, ws, upstream, room, alice):
    upstream.then(Behavior(usage=False))
    _, sock = await open_session(client_for, ws, alice, room)
    await sock.send_json_to({"type": "chat_message", "message": "hello"})
    end = await sock.recv_type("ai_stream_end")
    assert end["finish_reason"] == "stop"
    # Estimated, as the provider would count at most: the prompt as sent, the text received.
    sent = upstream.requests[-1].body["messages"]
    prompt = sum(len(m["content"].encode()) + 4 for m in sent) + 3
    completion = len(upstream.default.text.encode())
    cost = (Decimal(prompt) * Decimal("0.15") + Decimal(completion) * Decimal("0.60")) / 10**6
    assert end["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost_usd": str(cost.quantize(Decimal("0.000001"), rounding=ROUND_CEILING)),
        "estimated": True,
    }
    usage = await sync_to_async(LlmUsage.objects.get)()
    assert usage.total_tokens == prompt + completion
    assert usage.estimated is True


async def test_length_finish_reason(client_for, ws, upstream, room, alice):
    upstream.then(Behavior(finish_reason="length"))
    _, sock = await open_session(client_for, ws, alice, room)
    await sock.send_json_to({"type": "chat_message", "message": "hello"})
    assert (await sock.recv_type("ai_stream_end"))["finish_reason"] == "length"


async def test_empty_reply(client_for, ws, upstream, room, alice):
    upstream.then(Behavior(text=""))
    session, sock = await open_session(client_for, ws, alice, room)
    await sock.send_json_to({"type": "chat_message", "message": "hello"})
    end = await sock.recv_type("ai_stream_end")
    assert end["message_id"] is None
    assert await sync_to_async(Message.objects.filter(ai_session_id=session).count)() == 1
