"""Request and answer schemas of the AI-session API (SPEC 3.3), as the OpenAPI document
shows them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal
from uuid import UUID

from ninja import Field, Schema
from pydantic import field_validator

from chat.events import MessageOut, ReplyUsageOut
from llm.models import SYSTEM_PROMPT_MAX_CHARS

SESSION_CREATED_TEXT = "AI 세션이 생성되었습니다."

TITLE = "A name for the session (at most 100 characters; empty: none)."
MODEL = "One of LLM_MODELS (GET /api/llm/models/)."
PERSONA = "A preset's key (GET /api/llm/personas/); not with system_prompt."
SYSTEM_PROMPT = (
    f"What the assistant is told, written for this session (1 to {SYSTEM_PROMPT_MAX_CHARS} "
    "characters); not with persona."
)


class SessionPatchIn(Schema):
    """What to change; a field left out stays as it is."""

    title: str | None = Field(None, max_length=1000, description=TITLE)
    model: str | None = Field(None, max_length=100, description=MODEL)
    persona: str | None = Field(None, max_length=50, description=PERSONA)
    system_prompt: str | None = Field(
        None, max_length=SYSTEM_PROMPT_MAX_CHARS, description=SYSTEM_PROMPT
    )


class StartSessionIn(SessionPatchIn):
    """Only `room_uuid` is the seed's session: the default persona on the default model; the
    settings are those a session's PATCH takes."""

    room_uuid: UUID


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


USD_STRING = "USD as a string with 6 decimals, rounded up (a call that cost anything is never 0)."


class TotalsOut(Schema):
    """Usage totals (SPEC 11.1). Calls the provider gave no usage for (stopped, failed
    mid-stream, no usage chunk) count with an estimate that never counts fewer tokens than the
    provider would; the `estimated_*` fields say how much of each total that is."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: str = Field(..., description=USD_STRING, examples=["0.000042"])
    estimated_requests: int = Field(..., description="Calls whose usage is an estimate.")
    estimated_tokens: int = Field(..., description="The part of total_tokens that is estimated.")
    estimated_cost_usd: str = Field(..., description="The part of cost_usd that is estimated.")
    unpriced_requests: int = Field(
        ..., description="Calls of a model with no price (LLM_PRICES): not in cost_usd."
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
    # As room history (chat.api.MessagePageEnvelope): catch-up of edits and deletions.
    change_seq: int
    changes: list[MessageOut]
    has_more_changes: bool


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
        description="Summarise the room chat after this message id; default: the caller's "
        "read marker (the most recent messages that fit).",
    )


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
    usage: ReplyUsageOut | None = Field(..., description="The call's usage; null: no call.")


class SessionListQuery(Schema):
    room_uuid: UUID | None = None
    active: bool | None = None


class UsageQuery(Schema):
    since: dt.datetime | dt.date | None = Field(
        None, description="Start (inclusive); default: the 1st of this month, UTC."
    )
    until: dt.datetime | dt.date | None = Field(None, description="End (exclusive); default: now.")
    group_by: Literal["day", "model", "room", "session", "user"] | None = None
    room_uuid: UUID | None = Field(None, description="Only calls made in this room.")
    session_id: UUID | None = Field(None, description="Only calls made in this AI session.")
    format: Literal["json", "csv"] = Field(
        "json",
        description="`csv`: the same figures as a CSV file, one row per group (or per call "
        "without group_by), then the totals.",
    )

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


class RoomBudgetOut(Schema):
    room_id: UUID
    monthly_usd: str | None = Field(
        ..., description="The room's monthly AI budget in USD (2 decimals); null: none set."
    )
    spent_usd: str = Field(..., description="What the room's calls cost this month. " + USD_STRING)
    remaining_usd: str | None = Field(
        ..., description="monthly_usd less spent_usd, never below 0; null without a budget."
    )
    resets_at: dt.datetime = Field(..., description="The start of next month, UTC.")
    max_usd: str = Field(
        ..., description="The most an owner may set (LLM_ROOM_MONTHLY_BUDGET_MAX_USD)."
    )
    can_edit: bool = Field(..., description="Whether the caller may set it (the room's owner).")


class RoomBudgetEnvelope(Schema):
    result: Literal["success"]
    budget: RoomBudgetOut


class RoomBudgetIn(Schema):
    monthly_usd: Decimal | None = Field(
        ..., description="USD per month, 0 to max_usd, whole cents; null removes the budget."
    )
