"""Request and answer schemas of the AI-session API (SPEC 3.3), as the OpenAPI document
shows them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal
from uuid import UUID

from ninja import Field, Schema
from pydantic import field_validator

from chat.events import MessageOut
from llm.models import SYSTEM_PROMPT_MAX_CHARS

SESSION_CREATED_TEXT = "AI 세션이 생성되었습니다."

TITLE = "A name for the session (at most 100 characters; empty: none)."
MODEL = "One of LLM_MODELS (GET /api/llm/models/)."
PERSONA = "A preset's key (GET /api/llm/personas/); not with system_prompt."
SYSTEM_PROMPT = (
    f"What the assistant is told, written for this session (1 to {SYSTEM_PROMPT_MAX_CHARS} "
    "characters); not with persona."
)


class StartSessionIn(Schema):
    """Only `room_uuid` is the seed's session: the default persona on the default model."""

    room_uuid: UUID
    title: str | None = Field(None, max_length=1000, description=TITLE)
    model: str | None = Field(None, max_length=100, description=MODEL)
    persona: str | None = Field(None, max_length=50, description=PERSONA)
    system_prompt: str | None = Field(
        None, max_length=SYSTEM_PROMPT_MAX_CHARS, description=SYSTEM_PROMPT
    )


class SessionPatchIn(Schema):
    """What to change; a field left out stays as it is."""

    title: str | None = Field(None, max_length=1000, description=TITLE)
    model: str | None = Field(None, max_length=100, description=MODEL)
    persona: str | None = Field(None, max_length=50, description=PERSONA)
    system_prompt: str | None = Field(
        None, max_length=SYSTEM_PROMPT_MAX_CHARS, description=SYSTEM_PROMPT
    )


class StartSessionOut(Schema):
    result: Literal["success"]
    session_id: UUID
    room_uuid: UUID
    room_name: str
    message: str


class SessionOut(Schema):
    session_id: UUID
    room_uuid: UUID
    room_name: str
    created_at: dt.datetime
    is_active: bool
    created_by: str
    can_end: bool = Field(
        ..., description="Whether the caller may end this session (room owner, creator, staff)."
    )
    title: str
    model: str
    persona: str | None = Field(
        ..., description="The preset's key; null when the session has a prompt of its own."
    )
    system_prompt: str = Field(..., description="What the assistant is told in this session.")
    can_edit: bool = Field(
        ..., description="Whether the caller may change title, model and persona (PATCH)."
    )


class SessionListOut(Schema):
    result: Literal["success"]
    sessions: list[SessionOut]
    total_count: int


class TotalsOut(Schema):
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: Decimal
    unknown_usage_requests: int = Field(
        ..., description="Calls whose provider reported no usage; their tokens are unknown, not 0."
    )


class SessionDetailOut(SessionOut):
    deactivated_at: dt.datetime | None
    deactivated_by: str | None
    usage: TotalsOut


class SessionDetailEnvelope(Schema):
    result: Literal["success"]
    session: SessionDetailOut


class SessionMessagesOut(Schema):
    result: Literal["success"]
    messages: list[MessageOut]
    has_more: bool


class PersonaOut(Schema):
    key: str
    name: str
    system_prompt: str = Field(..., description="What the assistant is told with this preset.")
    model: str = Field(..., description="The model it runs on unless a session picks another.")
    is_default: bool


class PersonaListOut(Schema):
    result: Literal["success"]
    personas: list[PersonaOut]


class ModelListOut(Schema):
    result: Literal["success"]
    models: list[str] = Field(..., description="The models a session may use (LLM_MODELS).")
    default: str = Field(..., description="The model of a session that names none.")


class SummaryIn(Schema):
    since: int | None = Field(
        None,
        ge=0,
        le=2**62,
        description="Summarise the room chat after this message id; default: all of it (the "
        "most recent messages that fit).",
    )


class SummaryUsageOut(Schema):
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: str | None
    estimated: bool


class SummaryOut(Schema):
    result: Literal["success"]
    summary: str = Field(..., description="Markdown; empty when there was nothing to summarise.")
    message_count: int = Field(..., description="How many messages it summarises.")
    left_out: int = Field(
        ..., description="Older messages after `since` that did not fit, and are not in it."
    )
    since: int
    finish_reason: str | None = Field(
        ..., description="stop, length, or null when no call was made (nothing to summarise)."
    )
    usage: SummaryUsageOut | None = Field(..., description="The call's usage; null: no call.")


class SessionListQuery(Schema):
    room_uuid: UUID | None = None
    active: bool | None = None


class UsageQuery(Schema):
    since: dt.datetime | dt.date | None = Field(
        None, description="Start (inclusive); default: the 1st of this month, UTC."
    )
    until: dt.datetime | dt.date | None = Field(None, description="End (exclusive); default: now.")
    group_by: Literal["day", "model", "room", "user"] | None = None

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_only(cls, value: object) -> object:
        # Pydantic reads a bare number as Unix time: `since=2024` would silently mean 1970.
        try:
            float(str(value))
        except ValueError:
            return value
        raise ValueError("use an ISO 8601 date (2024-05-01) or date-time")


class UsageGroupOut(TotalsOut):
    key: str
    label: str


class UsageOut(Schema):
    result: Literal["success"]
    scope: Literal["own", "everyone"]
    since: dt.datetime
    until: dt.datetime
    totals: TotalsOut
    groups: list[UsageGroupOut]
