"""Hostile frames on the AI-session socket (issue 7): every frame is handled or answered with
an error frame, the socket stays usable, only valid messages are saved, and only they reach
the provider (one call each, through the real SDK to the local upstream)."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from hypothesis import given
from hypothesis import strategies as st

from chat.models import Message
from core.tests.hostile import (
    SWEEP,
    answer_of,
    client_ids_of,
    expected,
    frames,
    interleaves,
    plan,
    send,
)
from llm import services
from testkit.upstream import Behavior

pytestmark = pytest.mark.django_db(transaction=True)

AI_TYPES = frozenset({"chat_message", "typing", "stop_generation", "regenerate", "cancel_reply"})


@pytest.fixture
def session(upstream, room, alice, settings):
    settings.LLM_USER_RATE = "100000/minute"
    upstream.default = Behavior(text="ok, noted.", chunk_chars=5)
    return services.session_start(user=alice, room_id=room.pk)


def _counts(session_id: uuid.UUID) -> tuple[int, int]:
    rows = Message.objects.filter(ai_session_id=session_id)
    ai = rows.filter(sender__username=django_settings.AI_USERNAME).count()
    return rows.count() - ai, ai


@pytest.mark.slow
@SWEEP
@given(sent=st.lists(frames(AI_TYPES), min_size=1, max_size=5))
async def test_any_frames_on_the_ai_session_socket(ws, upstream, session, alice, sent):
    known = await sync_to_async(client_ids_of)(alice)
    people_before, ai_before = await sync_to_async(_counts)(session.pk)
    calls_before = len(upstream.requests)
    direct, layer, saved = plan(sent, AI_TYPES, known)
    stops = any(expected(f, AI_TYPES) is None for f in sent)
    sock = await ws(f"/ws/llm/{session.pk}/", alice)
    for frame in sent:
        await send(sock, frame)
    ping = f"ping {uuid.uuid4()}"
    await sock.send_json_to({"type": "chat_message", "message": ping})
    answers: list[tuple[str, str]] = []
    ends: list[dict] = []
    try:
        # Every saved message (the ping included) gets one reply, ended by ai_stream_end.
        while not (answers and answers[-1] == ("echo", ping)) or len(ends) < saved + 1:
            frame = await sock.recv(5)
            answer = answer_of(frame)
            if answer is not None:
                answers.append(answer)
            elif frame["type"] == "ai_stream_end":
                assert frame["finish_reason"] in ("stop", "stopped"), frame
                ends.append(frame)
            else:
                assert frame["type"] != "ai_error", frame
    finally:
        await sock.disconnect()
    assert interleaves(answers, direct, [*layer, ("echo", ping)]), (answers, direct, layer)
    assert len(ends) == saved + 1
    people_after, ai_after = await sync_to_async(_counts)(session.pk)
    assert people_after - people_before == saved + 1
    assert ai_after - ai_before == sum(1 for e in ends if e["message_id"] is not None)
    calls = len(upstream.requests) - calls_before
    # A stop can land before its reply's request is sent; nothing else skips or adds a call.
    assert calls <= saved + 1 if stops else calls == saved + 1
