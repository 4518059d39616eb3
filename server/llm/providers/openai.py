"""OpenAI Chat Completions, and any server that speaks it (OPENAI_BASE_URL), through the
official SDK. One AsyncOpenAI client per event loop is reused for every call."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import Any

import openai
from django.conf import settings

from core.errors import ProviderError
from llm.providers.base import (
    ChatRequest,
    CheckResult,
    Finished,
    StreamEvent,
    TextDelta,
    Usage,
)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = (
    weakref.WeakKeyDictionary()
)


def _client() -> openai.AsyncOpenAI:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = openai.AsyncOpenAI(
            api_key=settings.OPENAI_API_KEY or "not-set",
            base_url=settings.OPENAI_BASE_URL or None,
            # The SDK's default waits 600 s for a read; a stalled stream must end far sooner.
            timeout=openai.Timeout(settings.LLM_TIMEOUT_SECONDS, connect=10.0),
            max_retries=settings.LLM_MAX_RETRIES,
        )
    return client


async def warm_up() -> None:
    """Make this loop's client and load the SDK's chat modules, which it imports on first use,
    at start-up rather than inside the first reply (building the client's TLS context and
    importing the lazily loaded resources would delay it, and every reply queued behind it)."""
    _client().chat.completions  # noqa: B018 - the attribute access is the import


def map_error(exc: BaseException) -> ProviderError:
    """An SDK (or transport) failure as one of the project's error codes."""
    status = getattr(exc, "status_code", None)
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return ProviderError("upstream_auth", "The provider refused the API key.", status=status)
    if isinstance(exc, openai.RateLimitError):
        return ProviderError(
            "upstream_rate_limited", "The provider is rate limiting us.", status=status
        )
    if isinstance(exc, openai.APITimeoutError | asyncio.TimeoutError | TimeoutError):
        return ProviderError(
            "upstream_timeout", "The provider did not answer in time.", status=status
        )
    if isinstance(exc, openai.NotFoundError):
        return ProviderError(
            "ai_not_configured",
            f"The provider does not know the model {settings.LLM_MODEL!r} (check LLM_MODEL).",
            status=status,
        )
    if isinstance(exc, openai.APIStatusError):
        return ProviderError(
            "upstream_unavailable", f"The provider answered HTTP {exc.status_code}.", status=status
        )
    return ProviderError("upstream_unavailable", f"The provider failed: {type(exc).__name__}.")


class OpenAIProvider:
    name = "openai"

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": request.max_output_tokens,
        }
        if request.end_user:
            kwargs["user"] = request.end_user
        try:
            stream = await _client().chat.completions.create(**kwargs)
        except Exception as exc:
            raise map_error(exc) from exc
        finish: str | None = None
        usage: Usage | None = None
        try:
            iterator = stream.__aiter__()
            while True:
                try:
                    # The SDK's read time-out covers one socket read; this covers the whole
                    # wait for the next chunk, however the bytes trickle in.
                    chunk = await asyncio.wait_for(anext(iterator), settings.LLM_TIMEOUT_SECONDS)
                except StopAsyncIteration:
                    break
                if chunk.usage is not None:
                    usage = Usage(
                        prompt_tokens=chunk.usage.prompt_tokens,
                        completion_tokens=chunk.usage.completion_tokens,
                        total_tokens=chunk.usage.total_tokens,
                    )
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        yield TextDelta(choice.delta.content)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except ProviderError:
            raise
        except Exception as exc:
            raise map_error(exc) from exc
        finally:
            # A stream left open keeps its pooled connection (and the provider generating).
            await stream.close()
        if finish is None:
            raise ProviderError("upstream_unavailable", "The stream ended without a finish reason.")
        yield Finished(finish_reason="length" if finish == "length" else "stop", usage=usage)

    async def check(self, model: str) -> CheckResult:
        try:
            await _client().chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "ping"}],
                max_completion_tokens=1,
            )
        except openai.AuthenticationError:
            return CheckResult(False, "bad_key", "The provider refused OPENAI_API_KEY.")
        except openai.PermissionDeniedError:
            return CheckResult(False, "bad_key", "The key may not use this model or endpoint.")
        except openai.NotFoundError:
            return CheckResult(
                False, "unknown_model", f"The provider does not know the model {model!r}."
            )
        except openai.RateLimitError:
            return CheckResult(
                False, "rate_limited", "The key works but is rate limited or out of quota."
            )
        except openai.APIConnectionError as exc:
            return CheckResult(
                False, "unreachable", f"Cannot reach the provider: {type(exc).__name__}."
            )
        except openai.APIStatusError as exc:
            return CheckResult(False, "error", f"The provider answered HTTP {exc.status_code}.")
        return CheckResult(True, "ok", f"The key works and the model {model!r} answers.")


def reset_clients() -> None:
    """Forget the cached clients (after the settings they were built from changed)."""
    _clients.clear()
