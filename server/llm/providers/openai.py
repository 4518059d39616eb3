"""OpenAI Chat Completions, and any server that speaks it (OPENAI_BASE_URL), through the
official SDK. One AsyncOpenAI client per event loop is reused for every call."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator
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

# What the chunk iterator returns at the end (a `data: null` event decodes to None).
_END = object()

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


class _ChunkDeadline:
    """The limit on each wait for the next chunk, however the bytes trickle in (the SDK's read
    time-out covers one socket read only).

    It works as `asyncio.timeout` does, cancelling the reading task and turning that into a
    time-out, but with one timer per stream instead of one per chunk: a chunk only notes when
    the wait for the next began, and the timer, which fires at most once per `limit`, moves
    itself to that wait's end until a wait outlasts it. It cancels the task only while the task
    waits for the upstream, never while the caller handles a chunk. (A scope per chunk,
    `asyncio.timeout` or `wait_for`, which in Python 3.11 also starts a task, cost a few
    per cent of a process streaming 10,000 chunks a second: BENCHMARKS.md.)
    """

    def __init__(self, limit: float) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("A chunk deadline needs a task to cancel.")
        self._task = task
        self._cancelling = task.cancelling()
        self._limit = limit
        self._since: float | None = None  # when the current wait began; None between waits
        self._fired = False
        self._timer = self._loop.call_at(self._loop.time() + limit, self._check)

    def waiting(self) -> None:
        self._since = self._loop.time()

    def received(self) -> None:
        self._since = None

    def _check(self) -> None:
        now = self._loop.time()
        since = self._since
        if since is not None and now >= since + self._limit:
            self._fired = True
            self._task.cancel()
            return
        start = now if since is None else since
        self._timer = self._loop.call_at(start + self._limit, self._check)

    def owns_cancellation(self) -> bool:
        """Whether the cancellation being handled is this deadline's and no one else's; if
        it is, the task is no longer being cancelled. Called once, while handling it."""
        return self._fired and self._task.uncancel() <= self._cancelling

    def close(self) -> None:
        self._timer.cancel()


class OpenAIProvider:
    name = "openai"

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """The reply's chunks as the SDK decodes them, but as plain dicts rather than its
        pydantic models.

        The SDK still makes the request (auth, base URL, retries, the mapping of an error status
        to its exception) and decodes the server-sent events (`AsyncStream`: `[DONE]`, an error
        sent inside the stream raised as `APIError`, transport failures raised as
        `APITimeoutError` / `APIConnectionError`, the response drained and closed); only the
        model building per chunk is skipped: through the raw-response API
        (`with_streaming_response`), the response is parsed as `AsyncStream[object]`, whose
        items are the decoded JSON. Building a `ChatCompletionChunk` for every token was most
        of what the SDK cost per chunk (BENCHMARKS.md), and a reply needs three fields of it.
        """
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": request.max_output_tokens,
        }
        if request.end_user:
            kwargs["user"] = request.end_user
        opening = _client().chat.completions.with_streaming_response.create(**kwargs)
        try:
            # An error status raises here, as the SDK's status error, as it always did.
            response = await opening.__aenter__()
        except Exception as exc:
            raise map_error(exc) from exc
        finish: str | None = None
        usage: Usage | None = None
        deadline = _ChunkDeadline(settings.LLM_TIMEOUT_SECONDS)
        try:
            chunks = await response.parse(to=openai.AsyncStream[object])
            iterator = chunks.__aiter__()
            while True:
                deadline.waiting()
                chunk = await anext(iterator, _END)
                deadline.received()
                if chunk is _END:
                    break
                if not isinstance(chunk, dict):
                    raise ProviderError("upstream_unavailable", "The provider sent a bad chunk.")
                counts = chunk.get("usage")
                if counts:
                    usage = Usage(
                        prompt_tokens=counts["prompt_tokens"],
                        completion_tokens=counts["completion_tokens"],
                        total_tokens=counts["total_tokens"],
                    )
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta")
                    if delta:
                        content = delta.get("content")
                        if content and isinstance(content, str):
                            yield TextDelta(content)
                    reason = choice.get("finish_reason")
                    if reason:
                        finish = str(reason)
        except asyncio.CancelledError:
            if deadline.owns_cancellation():
                raise map_error(TimeoutError()) from None
            raise
        except ProviderError:
            raise
        except Exception as exc:
            raise map_error(exc) from exc
        finally:
            deadline.close()
            # A stream left open keeps its pooled connection (and the provider generating).
            await response.close()
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
