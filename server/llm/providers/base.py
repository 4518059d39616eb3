"""The one interface every LLM provider implements.

`stream(request)` yields `TextDelta`s as the model writes, then one `Finished` carrying the
finish reason and the provider's own usage figures (None when it sent none). Failures are
raised as `core.errors.ProviderError` with one of the codes of SPEC 4.2, so no SDK exception
leaves a provider module.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[ChatMessage]
    max_output_tokens: int
    # An opaque id of the end user, for the provider's abuse monitoring (never a name).
    end_user: str = ""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Finished:
    finish_reason: Literal["stop", "length"]
    usage: Usage | None = None


StreamEvent = TextDelta | Finished


@dataclass(frozen=True)
class CheckResult:
    """What `manage.py llm_check` reports."""

    ok: bool
    code: str  # ok, bad_key, unknown_model, unreachable, rate_limited, error
    detail: str
    extra: dict[str, str] = field(default_factory=dict)


class Provider(Protocol):
    name: str

    def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream one reply; raise ProviderError on failure."""

    async def check(self, model: str) -> CheckResult:
        """Make one small real call and say whether key, model and server work."""
