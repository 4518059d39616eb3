"""Choosing the provider (SPEC 7.1).

- LLM_PROVIDER=echo: the offline echo provider.
- LLM_PROVIDER=openai, or empty with OPENAI_API_KEY set: OpenAI or OPENAI_BASE_URL.
- empty, no key, DEBUG on: echo, so a newcomer can try the flow (a start-up warning says so).
- empty, no key, DEBUG off: none; the AI is "not configured" and never falls back silently.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from functools import cache

from django.conf import settings

from llm.providers.base import ChatRequest, Provider, StreamEvent, TextDelta
from llm.providers.echo import EchoProvider
from llm.providers.openai import OpenAIProvider
from llm.providers.openai import warm_up as openai_warm_up

PROVIDERS: dict[str, type[Provider]] = {"echo": EchoProvider, "openai": OpenAIProvider}


def provider_name() -> str | None:
    """The configured provider's name, or None when the AI is not configured."""
    chosen = settings.LLM_PROVIDER.strip().lower()
    if chosen:
        if chosen == "openai" and not settings.OPENAI_API_KEY:
            return None
        return chosen if chosen in PROVIDERS else None
    if settings.OPENAI_API_KEY:
        return "openai"
    return "echo" if settings.DEBUG else None


def model_name() -> str:
    return "echo" if provider_name() == "echo" else settings.LLM_MODEL


@cache
def _instance(name: str) -> Provider:
    return PROVIDERS[name]()


def get_provider() -> Provider | None:
    name = provider_name()
    return _instance(name) if name else None


async def warm_up() -> None:
    """Start-up hook: prepare the configured provider's client before the first reply."""
    if provider_name() == "openai":
        await openai_warm_up()


_SURROGATE = re.compile("[\ud800-\udfff]")


def sendable(text: str) -> str:
    """Model output made storable and sendable, whatever the provider sent: NUL (which
    PostgreSQL cannot store) and lone surrogates (which no UTF-8 encoder, database, channel layer
    or socket accepts) become U+FFFD; everything else is kept as written."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode()
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


@asynccontextmanager
async def stream_reply(
    name: str, request: ChatRequest
) -> AsyncIterator[AsyncIterator[StreamEvent]]:
    """The named provider's stream, opened: `async with stream_reply(...) as events`. Every
    piece of text is made sendable (`sendable`) and empty pieces are dropped: the boundary
    between the model's output and everything else.

    Leaving the block, however early (a stopped reply, a reader who left, an error), closes
    the provider's stream, and with it the upstream request, at once rather than whenever the
    abandoned generators are collected."""
    async with aclosing(_sendable(PROVIDERS[name]().stream(request))) as events:
        yield events


async def _sendable(events: AsyncGenerator[StreamEvent, None]) -> AsyncGenerator[StreamEvent, None]:
    async with aclosing(events):
        async for event in events:
            if isinstance(event, TextDelta):
                text = sendable(event.text)
                if text:
                    yield TextDelta(text)
            else:
                yield event
