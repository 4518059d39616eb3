"""The OpenAI provider, through the real SDK over HTTP against the local upstream: every way a
stream ends becomes a `Finished` or one of the project's error codes, and every text arrives
whole however the bytes were split."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core.errors import ProviderError
from llm.providers import stream_reply
from llm.providers.base import ChatMessage, ChatRequest, Finished, StreamEvent, TextDelta, Usage
from testkit.upstream import Behavior, FakeUpstream

KOREAN = "안녕하세요! 파이썬에서 리스트를 정렬하는 방법은 sorted()와 list.sort()입니다. 😀"


def _request(max_output_tokens: int = 4096) -> ChatRequest:
    return ChatRequest(
        model="gpt-4o-mini",
        messages=[ChatMessage("user", "alice: hello")],
        max_output_tokens=max_output_tokens,
    )


async def _collect(request: ChatRequest | None = None) -> tuple[str, list[StreamEvent]]:
    async with stream_reply("openai", request or _request()) as stream:
        events = [event async for event in stream]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    return text, events


async def _failure(request: ChatRequest | None = None) -> tuple[str, ProviderError]:
    """The text streamed before the stream failed, and the error it failed with."""
    pieces: list[str] = []

    async def read() -> None:
        async with stream_reply("openai", request or _request()) as events:
            async for event in events:
                assert isinstance(event, TextDelta), event
                pieces.append(event.text)

    with pytest.raises(ProviderError) as raised:
        await read()
    return "".join(pieces), raised.value


async def test_usage_comes_from_the_final_chunk(upstream: FakeUpstream) -> None:
    upstream.then(Behavior(text="one two three four", chunk_chars=3, prompt_tokens=17))
    text, events = await _collect()
    assert text == "one two three four"
    # 18 characters in chunks of 3: the fake upstream counts a token per chunk.
    assert events[-1] == Finished(
        finish_reason="stop", usage=Usage(prompt_tokens=17, completion_tokens=6, total_tokens=23)
    )
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}


async def test_no_usage_chunk_finishes_without_usage(upstream: FakeUpstream) -> None:
    upstream.then(Behavior(usage=False))
    text, events = await _collect()
    assert text == upstream.default.text
    assert events[-1] == Finished(finish_reason="stop", usage=None)


@pytest.mark.parametrize(
    ("behavior", "max_tokens"),
    [(Behavior(finish_reason="length"), 4096), (Behavior(text="abcdefghijkl", chunk_chars=2), 3)],
    ids=["sent-as-length", "cut-at-max-tokens"],
)
async def test_a_reply_cut_short_finishes_with_length(
    upstream: FakeUpstream, behavior: Behavior, max_tokens: int
) -> None:
    upstream.then(behavior)
    text, events = await _collect(_request(max_tokens))
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.finish_reason == "length"
    assert text == "".join(behavior.chunks()[:max_tokens])


@pytest.mark.parametrize(
    ("behavior", "code"),
    [
        (Behavior(status=429, retry_after=1), "upstream_rate_limited"),
        (Behavior(status=500), "upstream_unavailable"),
        (Behavior(status=503), "upstream_unavailable"),
        (Behavior(status=403), "upstream_auth"),
    ],
    ids=["429", "500", "503", "403"],
)
async def test_an_error_status_maps_to_the_projects_code(
    upstream: FakeUpstream, behavior: Behavior, code: str
) -> None:
    upstream.then(behavior)
    text, error = await _failure()
    assert (text, error.code) == ("", code)
    assert error.upstream_status == behavior.status


async def test_a_refused_key_is_upstream_auth(upstream: FakeUpstream, settings: Any) -> None:
    from llm.providers.openai import reset_clients

    settings.OPENAI_API_KEY = "sk-wrong-0123456789abcdefghij"
    reset_clients()
    _, error = await _failure()
    assert (error.code, error.upstream_status) == ("upstream_auth", 401)


async def test_an_unknown_model_is_not_configured(upstream: FakeUpstream) -> None:
    request = ChatRequest(
        model="no-such-model", messages=[ChatMessage("user", "hi")], max_output_tokens=10
    )
    _, error = await _failure(request)
    assert (error.code, error.upstream_status) == ("ai_not_configured", 404)


async def test_an_error_sent_inside_the_stream_fails_the_reply(upstream: FakeUpstream) -> None:
    upstream.then(Behavior(text="abcdefghijkl", chunk_chars=2, error_after=3))
    text, error = await _failure()
    assert text == "abcdef"
    assert error.code == "upstream_unavailable"


@pytest.mark.parametrize("piece_bytes", [2, 7, 64])
async def test_events_and_characters_split_across_reads_arrive_whole(
    upstream: FakeUpstream, piece_bytes: int
) -> None:
    # Three-byte syllables and a four-byte emoji, cut wherever the pieces fall.
    text = "정렬은 sorted() 😀 끝"
    upstream.then(Behavior(text=text, chunk_chars=3, utf8=True, piece_bytes=piece_bytes))
    streamed, events = await _collect()
    assert streamed == text
    assert isinstance(events[-1], Finished)
    assert events[-1].usage is not None


async def test_non_ascii_sent_as_utf8_or_as_escapes_reads_alike(upstream: FakeUpstream) -> None:
    upstream.then(Behavior(text=KOREAN, utf8=True), Behavior(text=KOREAN, utf8=False))
    assert (await _collect())[0] == KOREAN
    assert (await _collect())[0] == KOREAN


@pytest.mark.parametrize(
    "behavior",
    [
        # The upstream sends two chunks, then nothing.
        Behavior(text="abcdefgh", chunk_chars=2, stall_after=2),
        # Every socket read returns within the SDK's read time-out (keep-alive bytes every
        # 0.1 s), yet no chunk comes: those bytes must not hold off the time-out.
        Behavior(text="abcdefgh", chunk_chars=2, keepalive_after=2, keepalive_gap=0.1),
    ],
    ids=["stall", "keepalive-bytes"],
)
async def test_a_stream_that_sends_no_chunk_in_time_times_out(
    upstream: FakeUpstream, settings: Any, behavior: Behavior
) -> None:
    settings.LLM_TIMEOUT_SECONDS = 0.3
    upstream.then(behavior)
    text, error = await _failure()
    assert (text, error.code) == ("abcd", "upstream_timeout")


async def test_a_caller_slower_than_the_time_out_is_not_timed_out(
    upstream: FakeUpstream, settings: Any
) -> None:
    # The limit is on waiting for the upstream, not on the caller's handling of a chunk.
    settings.LLM_TIMEOUT_SECONDS = 0.3
    upstream.then(Behavior(text="abcdefgh", chunk_chars=2))
    pieces = []
    async with stream_reply("openai", _request()) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                pieces.append(event.text)
                await asyncio.sleep(0.4)
            else:
                assert event.finish_reason == "stop"
    assert "".join(pieces) == "abcdefgh"


async def test_a_stream_without_a_finish_reason_is_unavailable(upstream: FakeUpstream) -> None:
    upstream.then(Behavior(text="abcdefgh", chunk_chars=2, no_finish=True))
    text, error = await _failure()
    assert (text, error.code) == ("abcdefgh", "upstream_unavailable")


async def test_a_stream_cut_off_is_unavailable(upstream: FakeUpstream) -> None:
    upstream.then(Behavior(text="abcdefgh", chunk_chars=2, cut_after=2))
    text, error = await _failure()
    assert (text, error.code) == ("abcd", "upstream_unavailable")


async def test_text_that_cannot_be_sent_is_made_sendable(upstream: FakeUpstream) -> None:
    upstream.then(Behavior(pieces=("a\x00b", "\ud800", "c")))
    text, _ = await _collect()
    assert text == "a\ufffdb\ufffdc"


async def test_a_reply_left_early_closes_its_response(upstream: FakeUpstream) -> None:
    upstream.then(Behavior(text="abcdefghijklmnop" * 8, chunk_chars=2, delay=0.01))
    async with stream_reply("openai", _request()) as replies:
        first = await anext(replies)
        assert first == TextDelta("ab")
    request = upstream.requests[-1]
    # The upstream notices the closed connection at its next write.
    assert await asyncio.to_thread(request.finished.wait, 10)
    assert request.hung_up
    assert not request.completed
