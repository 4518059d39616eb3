"""The seed's AI-session flow over the real stack, against a local OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import logging

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message
from llm.models import AiReply, LlmUsage
from llm.tests.sessions import start_session
from testkit.upstream import Behavior

pytestmark = pytest.mark.django_db(transaction=True)

PERSONA_START = "당신은 개발자 채팅방에 참여한"


async def reply_frames(sock, wait=5):
    """Frames up to and including the assistant's final chat_message (without who is viewing
    the session, a frame of SPEC 9.3 that a seed-only client ignores)."""
    frames = []
    while True:
        f = await sock.recv(wait)
        if f["type"] == "session_viewers":
            continue
        frames.append(f)
        if f["type"] == "chat_message" and f["is_ai"]:
            return frames


async def test_the_seeds_scenario(client_for, ws, upstream, room, alice):
    # 1. the room's uuid from my-rooms, 2. start a session, 3. connect and talk.
    c = await sync_to_async(client_for)(alice)
    rooms = (await sync_to_async(c.get)("/api/chat/my-rooms/")).json()
    room_uuid = rooms["rooms"][0]["id"]
    r = await sync_to_async(c.post_json)("/api/llm/start_session/", {"room_uuid": room_uuid})
    body = r.json()
    assert r.status_code == 201
    assert set(body) == {"result", "session_id", "room_uuid", "room_name", "message"}
    assert body["message"] == "AI 세션이 생성되었습니다."
    assert body["room_uuid"] == room_uuid
    assert body["room_name"] == "devs"
    sock = await ws(f"/ws/llm/{body['session_id']}/", alice)
    joined = await sock.recv()
    assert joined["type"] == "ai_joined"
    assert joined["username"] == "AI_Assistant"
    assert joined["message"] == "AI_Assistant가 대화에 참여했습니다."
    assert joined["timestamp"]
    await sock.send_json_to(
        {"type": "chat_message", "message": "Django에서 비동기 처리하는 방법 알려줘"}
    )
    # The seed's frames, in the seed's order; between them `ai_queue` (SPEC 10.2), which a
    # seed-only client ignores.
    frames = [f for f in await reply_frames(sock) if f["type"] != "ai_queue"]
    types = [f["type"] for f in frames]
    assert types[0] == "chat_message"
    assert frames[0]["is_self"] is True
    assert frames[0]["is_ai"] is False
    assert frames[0]["username"] == "alice"
    assert types[1] == "ai_thinking"
    assert frames[1] == {
        "type": "ai_thinking",
        "username": "AI_Assistant",
        "reply_to": frames[0]["message_id"],
        "model": "gpt-4o-mini",
    }
    assert types[2] == "ai_stream_start"
    assert types[-2] == "ai_stream_end"
    final = frames[-1]
    assert final["is_ai"] is True
    assert final["is_self"] is False
    assert final["username"] == "AI_Assistant"
    assert final["message"] == upstream.default.text
    assert isinstance(final["message_id"], int)
    deltas = [f for f in frames if f["type"] == "ai_stream_delta"]
    assert "".join(d["delta"] for d in deltas) == final["message"]
    assert [d["index"] for d in deltas] == list(range(1, len(deltas) + 1))
    end = frames[-2]
    assert end["message_id"] == final["message_id"]
    assert end["finish_reason"] == "stop"
    assert end["usage"]["estimated"] is False
    assert end["usage"]["total_tokens"] == upstream.default.prompt_tokens + len(
        upstream.default.chunks()
    )
    # Upstream was asked to stream with usage.
    sent = upstream.requests[-1].body
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    # Saved once, as an AI_Assistant message of this session.
    stored = await sync_to_async(
        lambda: list(
            Message.objects.filter(ai_session_id=body["session_id"]).values_list(
                "sender__username", "content"
            )
        )
    )()
    assert stored == [
        ("alice", "Django에서 비동기 처리하는 방법 알려줘"),
        ("AI_Assistant", upstream.default.text),
    ]


async def test_every_member_sees_the_stream(client_for, ws, upstream, room, alice, bob):
    session = await start_session(client_for, alice, room)
    a = await ws(f"/ws/llm/{session}/", alice)
    b = await ws(f"/ws/llm/{session}/", bob)
    await a.recv_type("ai_joined")
    await b.recv_type("ai_joined")
    await a.send_json_to({"type": "chat_message", "message": "hi"})
    fa, fb = await reply_frames(a), await reply_frames(b)
    assert fb[0]["is_self"] is False
    assert fa[-1]["message"] == fb[-1]["message"] == upstream.default.text


async def test_context_holds_persona_last_ten_and_nothing_else(
    client_for, ws, upstream, room, alice, bob, settings
):
    from llm.models import AiChatSession

    session = await start_session(client_for, alice, room)
    other = await start_session(client_for, alice, room)
    s = await sync_to_async(AiChatSession.objects.get)(pk=session)
    o = await sync_to_async(AiChatSession.objects.get)(pk=other)

    def seed_history():
        from accounts.services import assistant_user

        ai = assistant_user()
        for i in range(12):
            Message.objects.create(
                room=room, ai_session=s, sender=alice if i % 2 == 0 else ai, content=f"old {i}"
            )
        Message.objects.create(
            room=room, ai_session=o, sender=bob, content="SECRET FROM OTHER SESSION"
        )
        Message.objects.create(room=room, sender=bob, content="SECRET FROM ROOM CHAT")

    await sync_to_async(seed_history)()
    sock = await ws(f"/ws/llm/{session}/", bob)
    await sock.send_json_to({"type": "chat_message", "message": "what did we say?"})
    await reply_frames(sock)
    messages = upstream.requests[-1].body["messages"]
    assert messages[0] == {"role": "system", "content": settings.LLM_SYSTEM_PROMPT}
    assert messages[0]["content"].startswith(PERSONA_START)
    history = messages[1:-1]
    assert len(history) == 10
    assert [m["content"].split(": ")[-1] for m in history] == [f"old {i}" for i in range(2, 12)]
    assert [m["role"] for m in history] == [
        "user" if i % 2 == 0 else "assistant" for i in range(2, 12)
    ]
    assert history[0]["content"] == "alice: old 2"
    assert messages[-1] == {"role": "user", "content": "bob: what did we say?"}
    flat = str(messages)
    assert "SECRET" not in flat


async def test_history_limit_is_configurable(client_for, ws, upstream, room, alice, settings):
    settings.LLM_HISTORY_LIMIT = 2
    session = await start_session(client_for, alice, room)
    sock = await ws(f"/ws/llm/{session}/", alice)
    for text in ("one", "two", "three"):
        await sock.send_json_to({"type": "chat_message", "message": text})
        await reply_frames(sock)
    messages = upstream.requests[-1].body["messages"]
    assert len(messages) == 1 + 2 + 1
    assert messages[-1]["content"] == "alice: three"
    assert messages[1]["content"] == "alice: two"
    assert messages[2]["role"] == "assistant"


async def test_two_quick_messages_get_two_replies_in_order(client_for, ws, upstream, room, alice):
    upstream.then(Behavior(text="first answer", delay=0.02), Behavior(text="second answer"))
    session = await start_session(client_for, alice, room)
    sock = await ws(f"/ws/llm/{session}/", alice)
    await sock.send_json_to({"type": "chat_message", "message": "q1"})
    await sock.send_json_to({"type": "chat_message", "message": "q2"})
    finals = []
    while len(finals) < 2:
        f = await sock.recv()
        if f["type"] == "chat_message" and f["is_ai"]:
            finals.append(f["message"])
    assert finals == ["first answer", "second answer"]
    assert len(upstream.requests) == 2
    second = upstream.requests[1].body["messages"]
    contents = [m["content"] for m in second]
    # The second reply sees the first question and its answer, then its own question.
    assert contents[1:] == ["alice: q1", "first answer", "alice: q2"]


async def test_stop_keeps_the_partial_text(client_for, ws, upstream, room, alice, bob):
    upstream.then(Behavior(text="x" * 400, chunk_chars=2, delay=0.02))
    session = await start_session(client_for, alice, room)
    a = await ws(f"/ws/llm/{session}/", alice)
    b = await ws(f"/ws/llm/{session}/", bob)
    await a.send_json_to({"type": "chat_message", "message": "long please"})
    await a.recv_type("ai_stream_delta")
    loop = asyncio.get_running_loop()
    asked = loop.time()
    await b.send_json_to({"type": "stop_generation"})
    end = await a.recv_type("ai_stream_end")
    assert loop.time() - asked < 0.5
    assert end["finish_reason"] == "stopped"
    final = await a.recv_type("chat_message")
    assert final["is_ai"] is True
    assert 0 < len(final["message"]) < 400
    reply = await sync_to_async(AiReply.objects.get)(reply__pk=final["message_id"])
    assert reply.status == "stopped"
    assert reply.finish_reason == "stopped"
    usage = await sync_to_async(LlmUsage.objects.get)(reply=reply)
    # No usage from the provider: estimated from what was sent and received, never 0.
    assert usage.estimated is True
    assert usage.completion_tokens == len(final["message"].encode())
    assert usage.prompt_tokens > 0
    # The session keeps working.
    await a.send_json_to({"type": "chat_message", "message": "again"})
    frames = await reply_frames(a)
    assert frames[-1]["message"] == upstream.default.text


async def test_stop_hangs_up_the_upstream_request(client_for, ws, upstream, room, alice):
    # The provider stops generating (and billing) when the reply is stopped, not at its end.
    upstream.then(Behavior(text="x" * 400, chunk_chars=2, delay=0.02))
    session = await start_session(client_for, alice, room)
    a = await ws(f"/ws/llm/{session}/", alice)
    await a.send_json_to({"type": "chat_message", "message": "long please"})
    await a.recv_type("ai_stream_delta")
    await a.send_json_to({"type": "stop_generation"})
    assert (await a.recv_type("ai_stream_end"))["finish_reason"] == "stopped"
    call = upstream.requests[-1]
    assert await asyncio.to_thread(call.finished.wait, 10)
    assert (call.hung_up, call.completed) == (True, False)


async def test_late_joiner_gets_the_text_so_far(client_for, ws, upstream, room, alice, bob):
    text = "".join(f"w{i:03d} " for i in range(60))
    upstream.then(Behavior(text=text, chunk_chars=5, delay=0.05))
    session = await start_session(client_for, alice, room)
    a = await ws(f"/ws/llm/{session}/", alice)
    await a.send_json_to({"type": "chat_message", "message": "go"})
    for _ in range(3):
        await a.recv_type("ai_stream_delta")
    b = await ws(f"/ws/llm/{session}/", bob)
    assert (await b.recv_type("ai_joined"))["type"] == "ai_joined"
    start = await b.recv_type("ai_stream_start")
    assert start["text"]
    assert text.startswith(start["text"])
    got = start["text"]
    while True:
        f = await b.recv()
        if f["type"] == "ai_stream_delta":
            got += f["delta"]
        elif f["type"] == "ai_stream_end":
            break
    assert got == text
    final = await b.recv_type("chat_message")
    assert final["message"] == text


async def test_reply_completes_when_the_sender_disconnects(
    client_for, ws, upstream, room, alice, bob
):
    upstream.then(Behavior(text="still delivered", delay=0.05, chunk_chars=2))
    session = await start_session(client_for, alice, room)
    a = await ws(f"/ws/llm/{session}/", alice)
    b = await ws(f"/ws/llm/{session}/", bob)
    await a.send_json_to({"type": "chat_message", "message": "bye"})
    await a.recv_type("ai_thinking")
    await a.disconnect()
    frames = await reply_frames(b)
    assert frames[-1]["message"] == "still delivered"
    assert await sync_to_async(Message.objects.filter(content="still delivered").count)() == 1


async def test_client_id_retry_asks_the_ai_once(client_for, ws, upstream, room, alice):
    session = await start_session(client_for, alice, room)
    a = await ws(f"/ws/llm/{session}/", alice)
    frame = {"type": "chat_message", "message": "once", "client_id": "k-1"}
    await a.send_json_to(frame)
    await reply_frames(a)
    await a.send_json_to(frame)
    echo = await a.recv_type("chat_message")
    assert echo["client_id"] == "k-1"
    assert await a.receive_nothing(0.3)
    assert len(upstream.requests) == 1


async def test_streaming_is_coalesced(client_for, ws, upstream, room, alice):
    # 300 one-character chunks arrive at once: far fewer deltas go out (about one per 20
    # characters; the bound leaves room for a loaded machine's slower event loop).
    upstream.then(Behavior(text="y" * 300, chunk_chars=1))
    session = await start_session(client_for, alice, room)
    a = await ws(f"/ws/llm/{session}/", alice)
    await a.send_json_to({"type": "chat_message", "message": "fast"})
    frames = await reply_frames(a)
    deltas = [f for f in frames if f["type"] == "ai_stream_delta"]
    assert len(deltas) <= 300 // 10
    assert "".join(d["delta"] for d in deltas) == "y" * 300


async def test_logs_carry_the_prefixes_and_no_secrets(
    client_for, ws, upstream, room, alice, caplog
):
    caplog.set_level(logging.INFO)
    session = await start_session(client_for, alice, room)
    a = await ws(f"/ws/llm/{session}/", alice)
    await a.send_json_to({"type": "chat_message", "message": "private words"})
    await reply_frames(a)
    ai_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[AI_")]
    prefixes = {line.split("]")[0] + "]" for line in ai_lines}
    assert {"[AI_DEBUG]", "[AI_SUCCESS]"} <= prefixes
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert upstream.api_key not in everything
    assert "private words" not in everything
    assert "Correct-Horse-42" not in everything
