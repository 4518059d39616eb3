"""The offline provider: no network, no key. It streams back a reply that says plainly that
the assistant is offline and repeats the message, so a newcomer can try the whole flow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from llm.providers.base import ChatRequest, CheckResult, Finished, StreamEvent, TextDelta, Usage

OFFLINE_NOTICE = (
    "(오프라인 모드) AI 제공자가 설정되지 않아 받은 메시지를 그대로 돌려드립니다. "
    "실제 답변을 받으려면 OPENAI_API_KEY를 설정하세요.\n\n"
)
# Seconds between words, so that the reply visibly streams.
WORD_DELAY = 0.03


def _words(text: str) -> list[str]:
    out: list[str] = []
    word = ""
    for ch in text:
        word += ch
        if ch.isspace():
            out.append(word)
            word = ""
    if word:
        out.append(word)
    return out


class EchoProvider:
    name = "echo"

    def __init__(self, word_delay: float = WORD_DELAY) -> None:
        self.word_delay = word_delay

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        reply = OFFLINE_NOTICE + f"> {last}"
        words = _words(reply)
        limit = max(request.max_output_tokens, 1)
        finish: str = "stop"
        if len(words) > limit:
            words = words[:limit]
            finish = "length"
        for word in words:
            await asyncio.sleep(self.word_delay)
            yield TextDelta(word)
        prompt = sum(len(_words(m.content)) for m in request.messages)
        yield Finished(
            finish_reason="length" if finish == "length" else "stop",
            usage=Usage(prompt, len(words), prompt + len(words)),
        )

    async def check(self, model: str) -> CheckResult:
        return CheckResult(True, "ok", "The offline echo provider needs no key or server.")
