"""Frames of the assistant (SPEC 4.2, 4.3), one typed schema each. `ai_error` is
`core.errors.AiErrorFrame`, built from the error hierarchy."""

from __future__ import annotations

from typing import Any, Literal

from django.conf import settings
from pydantic import BaseModel

AI_JOINED_TEXT = "AI_Assistant가 대화에 참여했습니다."
SESSION_ENDED_TEXT = "AI 세션이 종료되었습니다."


class AiJoined(BaseModel):
    type: Literal["ai_joined"] = "ai_joined"
    username: str = settings.AI_USERNAME
    message: str = AI_JOINED_TEXT
    timestamp: str


class AiThinking(BaseModel):
    type: Literal["ai_thinking"] = "ai_thinking"
    username: str = settings.AI_USERNAME
    reply_to: int | None = None
    model: str | None = None


class AiStreamStart(BaseModel):
    type: Literal["ai_stream_start"] = "ai_stream_start"
    stream_id: str
    username: str = settings.AI_USERNAME
    timestamp: str
    text: str = ""
    reply_to: int | None = None
    model: str | None = None


class AiStreamDelta(BaseModel):
    type: Literal["ai_stream_delta"] = "ai_stream_delta"
    stream_id: str
    index: int
    delta: str


class UsageOut(BaseModel):
    """One call's usage (SPEC 11.1): the provider's figures, or an estimate (`estimated`).
    `cost_usd` has 6 decimals, rounded up; null only for a model with no price."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: str | None
    estimated: bool


class AiStreamEnd(BaseModel):
    type: Literal["ai_stream_end"] = "ai_stream_end"
    stream_id: str
    message_id: int | None
    finish_reason: Literal["stop", "length", "stopped", "error"]
    usage: UsageOut
    reply_to: int | None = None
    model: str | None = None


class QueuedQuestion(BaseModel):
    message_id: int
    username: str  # who asked (for a question asked again, who asked again)


class AiQueue(BaseModel):
    """The conversation's questions being answered and waiting, in the order they will be
    (SPEC 10.2); sent whenever it changes."""

    type: Literal["ai_queue"] = "ai_queue"
    generating: int | None
    pending: list[QueuedQuestion]


class SessionSettingsOut(BaseModel):
    """What steers the assistant in a session (SPEC 10.1), the same for every member."""

    session_id: str
    title: str
    model: str
    persona: str | None
    system_prompt: str


class SessionUpdated(BaseModel):
    type: Literal["session_updated"] = "session_updated"
    session: SessionSettingsOut
    username: str


class AiSessionEnded(BaseModel):
    type: Literal["ai_session_ended"] = "ai_session_ended"
    session_id: str
    message: str = SESSION_ENDED_TEXT


def frame(model: BaseModel) -> dict[str, Any]:
    """A frame as sent: `type` first, unset optional fields left out."""
    return model.model_dump(exclude_none=True)
