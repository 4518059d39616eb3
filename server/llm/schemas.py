"""Request and answer schemas of the AI-session API (SPEC 3.3), as the OpenAPI document
shows them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal
from uuid import UUID

from ninja import Field, Schema
from pydantic import field_validator

from llm.events import SessionMessageOut

SESSION_CREATED_TEXT = "AI 세션이 생성되었습니다."


class StartSessionIn(Schema):
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
    model: str
    deactivated_at: dt.datetime | None
    deactivated_by: str | None
    usage: TotalsOut


class SessionDetailEnvelope(Schema):
    result: Literal["success"]
    session: SessionDetailOut


class SessionMessagesOut(Schema):
    result: Literal["success"]
    messages: list[SessionMessageOut]
    has_more: bool


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
