"""Reads of AI sessions and usage, with the one access check for a session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from accounts.models import User
from chat.models import ChatRoom
from chat.selectors import member_filter
from core.errors import NotFound
from llm.models import AiChatSession, AiReply, LlmUsage


def session_visible_to(user: User) -> QuerySet[AiChatSession]:
    rooms = ChatRoom.objects.filter(member_filter(user)).values("pk")
    return AiChatSession.objects.filter(room__in=rooms)


def access_session(*, session_id: UUID, user: User, staff_sees_all: bool = False) -> AiChatSession:
    """The session, if `user` is a member of its room (or staff, where the caller allows it);
    otherwise NotFound, exactly as for a session that does not exist."""
    visible = (
        AiChatSession.objects.all()
        if staff_sees_all and user.is_staff
        else session_visible_to(user)
    )
    session = (
        visible.select_related("room", "room__owner", "created_by").filter(pk=session_id).first()
    )
    if session is None:
        raise NotFound("No such AI session.")
    return session


def can_end_session(*, user: User, session: AiChatSession) -> bool:
    """Whether `user` may end `session`: the room's owner, the session's creator, or staff
    (the one statement of the rule: the API, the pages and the service all ask here)."""
    if not session.is_active:
        return False
    return user.is_staff or user.pk in (session.room.owner_id, session.created_by_id)


@dataclass(frozen=True)
class SocketAccess:
    exists: bool
    member: bool
    active: bool
    room_id: UUID | None


def session_socket_access(*, session_id: UUID, user: User) -> SocketAccess:
    """What the socket handshake needs to pick its close code (SPEC 4)."""
    row = AiChatSession.objects.filter(pk=session_id).values("room_id", "is_active").first()
    if row is None:
        return SocketAccess(False, False, False, None)
    member = ChatRoom.objects.filter(member_filter(user), pk=row["room_id"]).exists()
    return SocketAccess(True, member, bool(row["is_active"]), row["room_id"])


def session_list(
    *, user: User, room_id: UUID | None = None, active: bool | None = None
) -> list[AiChatSession]:
    qs = session_visible_to(user).select_related("room", "created_by")
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


def reply_in_progress(*, session_id: UUID) -> AiReply | None:
    return AiReply.objects.filter(session_id=session_id, status=AiReply.Status.STREAMING).first()


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


def sessions_with_unfinished_replies() -> list[UUID]:
    """Active sessions with a reply queued or (as far as the database knows) being generated."""
    return list(
        AiReply.objects.filter(
            status__in=(AiReply.Status.PENDING, AiReply.Status.STREAMING),
            session__is_active=True,
        )
        .order_by()
        .values_list("session_id", flat=True)
        .distinct()
    )
