"""Frames of the assistant (SPEC 4.2, 4.3), one typed schema each. `ai_error` is
`core.errors.AiErrorFrame`, built from the error hierarchy."""

from __future__ import annotations

from typing import Any, Literal

from django.conf import settings
from pydantic import BaseModel

from chat.events import MessageOut

AI_JOINED_TEXT = "AI_Assistant가 대화에 참여했습니다."
SESSION_ENDED_TEXT = "AI 세션이 종료되었습니다."


class SessionMessageOut(MessageOut):
    """A message of an AI session; the assistant's replies say how they ended."""

    finish_reason: str | None = None


class AiJoined(BaseModel):
    type: Literal["ai_joined"] = "ai_joined"
    username: str = settings.AI_USERNAME
    message: str = AI_JOINED_TEXT
    timestamp: str


class AiThinking(BaseModel):
    type: Literal["ai_thinking"] = "ai_thinking"
    username: str = settings.AI_USERNAME


class AiStreamStart(BaseModel):
    type: Literal["ai_stream_start"] = "ai_stream_start"
    stream_id: str
    username: str = settings.AI_USERNAME
    timestamp: str
    text: str = ""


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


class AiSessionEnded(BaseModel):
    type: Literal["ai_session_ended"] = "ai_session_ended"
    session_id: str
    message: str = SESSION_ENDED_TEXT


def frame(model: BaseModel) -> dict[str, Any]:
    """A frame as sent: `type` first, unset optional fields left out."""
    return model.model_dump(exclude_none=True)
