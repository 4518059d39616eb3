"""Whatever the model sends, a reply ends with its frames (OWASP LLM05): text is made storable
and sendable at the provider boundary (llm.providers.stream_reply), and a reply that cannot be
saved still ends for everyone with `ai_stream_end` and a documented `ai_error`."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError
from hypothesis import given
from hypothesis import strategies as st

from chat.models import Message
from core.tests.hostile import SWEEP
from llm import replies, services
from llm.providers import sendable
from testkit.upstream import Behavior

pytestmark = pytest.mark.django_db(transaction=True)


def test_sendable_replaces_only_what_cannot_be_stored_or_sent():
    assert sendable("a\x00b") == "a\ufffdb"
    assert sendable("x\ud800y\udfff") == "x\ufffdy\ufffd"
    kept = "<script>alert(1)</script> \u202e \x07 \t\n 한국어 😀"
    assert sendable(kept) == kept


@pytest.fixture
def session(room, alice):
    return services.session_start(user=alice, room_id=room.pk)


async def _reply(sock) -> list[dict]:
    frames = []
    while True:
        frame = await sock.recv(5)
        frames.append(frame)
        if frame["type"] == "ai_error" or (frame["type"] == "chat_message" and frame["is_ai"]):
            return frames


async def test_nul_from_the_model_is_stored_and_streamed_as_a_replacement(
    ws, upstream, session, alice, bob
):
    upstream.default = Behavior(text="before\x00after <b>bold</b>", chunk_chars=3)
    a = await ws(f"/ws/llm/{session.pk}/", alice)
    b = await ws(f"/ws/llm/{session.pk}/", bob)
    await a.recv_type("ai_joined")
    await b.recv_type("ai_joined")
    await a.send_json_to({"type": "chat_message", "message": "say it"})
    for sock in (a, b):
        frames = await _reply(sock)
        end = next(f for f in frames if f["type"] == "ai_stream_end")
        assert end["finish_reason"] == "stop"
        streamed = "".join(f["delta"] for f in frames if f["type"] == "ai_stream_delta")
        assert streamed == frames[-1]["message"] == "before\ufffdafter <b>bold</b>"
    saved = await sync_to_async(Message.objects.get)(pk=end["message_id"])
    assert saved.content == "before\ufffdafter <b>bold</b>"


async def test_a_reply_that_cannot_be_saved_still_ends_for_everyone(
    ws, upstream, session, alice, bob, monkeypatch
):
    upstream.default = Behavior(text="an answer", chunk_chars=3)

    def cannot_save(**kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr(replies, "reply_finish", cannot_save)
    a = await ws(f"/ws/llm/{session.pk}/", alice)
    b = await ws(f"/ws/llm/{session.pk}/", bob)
    await a.recv_type("ai_joined")
    await b.recv_type("ai_joined")
    await a.send_json_to({"type": "chat_message", "message": "q"})
    for sock in (a, b):
        frames = await _reply(sock)
        end = next(f for f in frames if f["type"] == "ai_stream_end")
        assert (end["finish_reason"], end["message_id"]) == ("error", None)
        assert frames[-1]["type"] == "ai_error"
        assert frames[-1]["code"] == "service_unavailable"


# What a provider might stream: NUL, lone surrogates, control characters, markup, bidi and
# combining marks, empty pieces and huge ones, and anything else Unicode has.
HOSTILE_PIECES = st.one_of(
    st.sampled_from(
        [
            "",
            "\x00",
            "\ud800",
            "\udfff",
            "a\x00\ud83d",
            "\x07\x1b[31m",
            "<script>x()</script>",
            "\u202e\u0301",
            "}\n\ndata: [DONE]\n\n",
            "😀",
            "한국어",
        ]
    ),
    st.text(st.characters(codec=None), max_size=40),
    st.text(alphabet="x\x00\ud800 ", min_size=5_000, max_size=20_000),
)


@pytest.mark.slow
@SWEEP
@given(pieces=st.lists(HOSTILE_PIECES, max_size=8))
async def test_any_model_output_ends_every_reply_with_its_frames(
    ws, upstream, session, alice, bob, pieces, settings
):
    settings.LLM_USER_RATE = "100000/minute"  # one message per example
    upstream.default = Behavior(pieces=tuple(pieces))
    expected = "".join(sendable(piece) for piece in pieces)
    a = await ws(f"/ws/llm/{session.pk}/", alice)
    b = await ws(f"/ws/llm/{session.pk}/", bob)
    await a.recv_type("ai_joined")
    await b.recv_type("ai_joined")
    await a.send_json_to({"type": "chat_message", "message": "go"})
    try:
        for sock in (a, b):
            end = await sock.recv_type("ai_stream_end", timeout=10)
            assert end["finish_reason"] == "stop", end
            if expected:
                final = await sock.recv_type("chat_message", timeout=5)
                assert final["is_ai"]
                assert final["message"] == expected
                assert final["message_id"] == end["message_id"]
            else:
                assert end["message_id"] is None  # nothing was said: no message to show
    finally:
        await a.disconnect()
        await b.disconnect()
    if expected:
        saved = await sync_to_async(Message.objects.get)(pk=end["message_id"])
        assert saved.content == expected
