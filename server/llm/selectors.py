"""Reads of AI sessions, their replies and what the provider calls used."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from accounts.models import User
from chat.conversations import Conversation
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
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: Decimal
    unknown_usage_requests: int


def usage_totals(qs: QuerySet[LlmUsage]) -> Totals:
    agg = qs.aggregate(
        requests=Count("id"),
        prompt=Sum("prompt_tokens"),
        completion=Sum("completion_tokens"),
        total=Sum("total_tokens"),
        cost=Sum("cost_usd"),
        unknown=Count("id", filter=Q(usage_known=False)),
    )
    return Totals(
        requests=agg["requests"] or 0,
        prompt_tokens=agg["prompt"] or 0,
        completion_tokens=agg["completion"] or 0,
        total_tokens=agg["total"] or 0,
        cost_usd=agg["cost"] or Decimal(0),
        unknown_usage_requests=agg["unknown"] or 0,
    )


def session_usage(*, session: AiChatSession) -> Totals:
    return usage_totals(LlmUsage.objects.filter(session=session))


def usage_rows(
    *, user: User | None, since: datetime | None, until: datetime | None
) -> QuerySet[LlmUsage]:
    """Usage records in a period; `user=None` means everyone's (staff)."""
    qs = LlmUsage.objects.all()
    if user is not None:
        qs = qs.filter(user=user)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


GROUP_KEYS: dict[str, tuple[str, str | None]] = {
    "day": ("day", None),
    "model": ("model", None),
    "room": ("room_id", "room__name"),
    "user": ("user_id", "user__username"),
}


@dataclass(frozen=True)
class UsageGroup:
    key: str
    label: str
    totals: Totals


def usage_groups(rows: QuerySet[LlmUsage], *, group_by: str) -> list[UsageGroup]:
    """Totals per day (UTC), model, room or user, in one query."""
    key, label = GROUP_KEYS[group_by]
    grouped = rows.annotate(day=TruncDate("created_at")) if group_by == "day" else rows
    fields = [key, label] if label else [key]
    out = []
    for row in (
        grouped.values(*fields)
        .annotate(
            requests=Count("id"),
            p=Sum("prompt_tokens"),
            c=Sum("completion_tokens"),
            t=Sum("total_tokens"),
            cost=Sum("cost_usd"),
            unknown=Count("id", filter=Q(usage_known=False)),
        )
        .order_by(key)
    ):
        totals = Totals(
            requests=row["requests"],
            prompt_tokens=row["p"] or 0,
            completion_tokens=row["c"] or 0,
            total_tokens=row["t"] or 0,
            cost_usd=row["cost"] or Decimal(0),
            unknown_usage_requests=row["unknown"],
        )
        text = str(row[key])
        out.append(UsageGroup(key=text, label=str(row[label]) if label else text, totals=totals))
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
