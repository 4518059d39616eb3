"""Reads of AI sessions, their replies and what the provider calls used."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from accounts.models import User
from chat.conversations import Conversation
from llm import prices
from llm.access import visible_sessions
from llm.models import AiChatSession, AiReply, LlmUsage


def session_list(
    *, user: User, room_id: UUID | None = None, active: bool | None = None
) -> list[AiChatSession]:
    qs = visible_sessions(user).select_related("room", "created_by", "persona")
    if room_id is not None:
        qs = qs.filter(room_id=room_id)
    if active is not None:
        qs = qs.filter(is_active=active)
    return list(qs.order_by("-created_at", "-pk"))


@dataclass(frozen=True)
class Totals:
    """Every figure about usage that anyone is shown: the API, the pages (through the API),
    the admin and `llm_usage` all take them from here, and write costs with
    `prices.usd_text`."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: Decimal
    # The share of the above that is estimated (calls the provider gave no usage for).
    estimated_requests: int
    estimated_tokens: int
    estimated_cost_usd: Decimal
    # Calls of a model with no price: their tokens count, their cost is unknown.
    unpriced_requests: int

    def figures(self) -> dict[str, int | str]:
        """As the API shows them (SPEC 11.1): costs as USD strings with 6 decimals."""
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": prices.usd_text(self.cost_usd) or "0.000000",
            "estimated_requests": self.estimated_requests,
            "estimated_tokens": self.estimated_tokens,
            "estimated_cost_usd": prices.usd_text(self.estimated_cost_usd) or "0.000000",
            "unpriced_requests": self.unpriced_requests,
        }


ESTIMATED = Q(estimated=True)
AGGREGATES = {
    "requests": Count("id"),
    "p": Sum("prompt_tokens"),
    "c": Sum("completion_tokens"),
    "t": Sum("total_tokens"),
    "cost": Sum("cost_usd"),
    "est_n": Count("id", filter=ESTIMATED),
    "est_t": Sum("total_tokens", filter=ESTIMATED),
    "est_cost": Sum("cost_usd", filter=ESTIMATED),
    "unpriced": Count("id", filter=Q(cost_usd__isnull=True)),
}


def _totals(row: dict[str, Any]) -> Totals:
    return Totals(
        requests=row["requests"] or 0,
        prompt_tokens=row["p"] or 0,
        completion_tokens=row["c"] or 0,
        total_tokens=row["t"] or 0,
        cost_usd=row["cost"] or Decimal(0),
        estimated_requests=row["est_n"] or 0,
        estimated_tokens=row["est_t"] or 0,
        estimated_cost_usd=row["est_cost"] or Decimal(0),
        unpriced_requests=row["unpriced"] or 0,
    )


def usage_totals(qs: QuerySet[LlmUsage]) -> Totals:
    return _totals(qs.aggregate(**AGGREGATES))


def session_usage(*, session: AiChatSession) -> Totals:
    return usage_totals(LlmUsage.objects.filter(session=session))


def usage_rows(
    *,
    user: User | None,
    since: datetime | None,
    until: datetime | None,
    room_id: UUID | None = None,
    session_id: UUID | None = None,
) -> QuerySet[LlmUsage]:
    """Usage records in a period; `user=None` means everyone's (staff)."""
    qs = LlmUsage.objects.all()
    if user is not None:
        qs = qs.filter(user=user)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    if room_id is not None:
        qs = qs.filter(room_id=room_id)
    if session_id is not None:
        qs = qs.filter(session_id=session_id)
    return qs


GROUP_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "day": ("day", ()),
    "model": ("model", ()),
    "room": ("room_id", ("room__name",)),
    "session": ("session_id", ("session__room__name", "session__created_at")),
    "user": ("user_id", ("user__username",)),
}


@dataclass(frozen=True)
class UsageGroup:
    key: str
    label: str
    totals: Totals


def _label(group_by: str, row: dict[str, Any]) -> str:
    key = row[GROUP_KEYS[group_by][0]]
    if group_by == "day":
        return str(key)
    if group_by == "session":
        if key is None:
            return "room chat"
        return f"{row['session__room__name']} · {row['session__created_at']:%Y-%m-%d %H:%M}"
    if key is None:
        return "(deleted)"
    fields = GROUP_KEYS[group_by][1]
    return str(row[fields[0]]) if fields else str(key)


def usage_groups(rows: QuerySet[LlmUsage], *, group_by: str) -> list[UsageGroup]:
    """Totals per day (UTC), model, room, session or user, in one query."""
    key, labels = GROUP_KEYS[group_by]
    grouped = rows.annotate(day=TruncDate("created_at")) if group_by == "day" else rows
    out = []
    for row in grouped.values(key, *labels).annotate(**AGGREGATES).order_by(key):
        out.append(UsageGroup(key=str(row[key]), label=_label(group_by, row), totals=_totals(row)))
    return out


def conversations_with_unfinished_replies() -> list[Conversation]:
    """Conversations with a reply queued or (as far as the database knows) being generated,
    whose session, if any, is still active."""
    rows = (
        AiReply.objects.filter(status__in=(AiReply.Status.PENDING, AiReply.Status.STREAMING))
        .exclude(session__is_active=False)
        .order_by()
        .values_list("room_id", "session_id")
        .distinct()
    )
    return [Conversation(room_id=room_id, session_id=session_id) for room_id, session_id in rows]
