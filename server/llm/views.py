"""The AI-session API (SPEC 3.3): one handler per endpoint. Paths are mapped in `llm/urls.py`,
schemas are `llm/schemas.py`."""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Status

from accounts.models import User
from chat.api import HistoryQuery
from chat.conversations import Conversation
from chat.events import message_out
from chat.selectors import message_page
from core.errors import ValidationFailed
from llm import selectors, services
from llm.access import access_session
from llm.events import SessionMessageOut
from llm.models import AiChatSession
from llm.schemas import SESSION_CREATED_TEXT, SessionListQuery, StartSessionIn, UsageQuery
from llm.selectors import Totals
from llm.workspace import session_out


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def totals_out(totals: Totals) -> dict[str, object]:
    return {
        "requests": totals.requests,
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "total_tokens": totals.total_tokens,
        "cost_usd": totals.cost_usd,
        "unknown_usage_requests": totals.unknown_usage_requests,
    }


def session_detail(session: AiChatSession, *, viewer: User) -> dict[str, object]:
    return {
        "result": "success",
        "session": {
            **session_out(session, viewer=viewer),
            "model": session.model,
            "deactivated_at": session.deactivated_at,
            "deactivated_by": session.deactivated_by.username if session.deactivated_by else None,
            "usage": totals_out(selectors.session_usage(session=session)),
        },
    }


def start_session(request: HttpRequest, payload: StartSessionIn) -> Status[dict[str, object]]:
    session = services.session_start(user=_user(request), room_id=payload.room_uuid)
    return Status(
        201,
        {
            "result": "success",
            "session_id": session.pk,
            "room_uuid": session.room_id,
            "room_name": session.room.name,
            "message": SESSION_CREATED_TEXT,
        },
    )


def list_sessions(request: HttpRequest, query: Query[SessionListQuery]) -> dict[str, object]:
    sessions = selectors.session_list(
        user=_user(request), room_id=query.room_uuid, active=query.active
    )
    return {
        "result": "success",
        "sessions": [session_out(s, viewer=_user(request)) for s in sessions],
        "total_count": len(sessions),
    }


def get_session(request: HttpRequest, session_id: UUID) -> dict[str, object]:
    session = access_session(session_id=session_id, user=_user(request))
    return session_detail(session, viewer=_user(request))


def session_messages(
    request: HttpRequest, session_id: UUID, query: Query[HistoryQuery]
) -> dict[str, object]:
    session = access_session(session_id=session_id, user=_user(request))
    page = message_page(
        conversation=Conversation(room_id=session.room_id, session_id=session.pk),
        before=query.before,
        after=query.after,
        limit=query.limit,
    )
    viewer = _user(request)
    messages = []
    for m in page.messages:
        reply = getattr(m, "ai_reply", None)
        messages.append(
            SessionMessageOut(
                **message_out(
                    m, viewer_id=viewer.pk, mentions=page.mentions.get(m.pk)
                ).model_dump(),
                finish_reason=reply.finish_reason if reply is not None else None,
            )
        )
    return {"result": "success", "messages": messages, "has_more": page.has_more}


def deactivate_session(request: HttpRequest, session_id: UUID) -> dict[str, object]:
    session = services.session_deactivate(session_id=session_id, actor=_user(request))
    return session_detail(session, viewer=_user(request))


def _bound(value: dt.datetime | dt.date | None, name: str) -> dt.datetime | None:
    """A bound of the period in UTC (a date: its midnight, UTC). Converted, not passed on:
    ISO 8601 allows UTC offsets up to 23:59, PostgreSQL only up to 15:59."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time.min, tzinfo=dt.UTC)
    if timezone.is_naive(value):
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise ValidationFailed(f"{name}: out of range.") from exc


def usage(request: HttpRequest, query: Query[UsageQuery]) -> dict[str, object]:
    user = _user(request)
    now = timezone.now()
    since = _bound(query.since, "since") or now.replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    until = _bound(query.until, "until") or now
    if until <= since:
        raise ValidationFailed("until: must be after since.")
    rows = selectors.usage_rows(user=None if user.is_staff else user, since=since, until=until)
    groups = (
        [
            {"key": g.key, "label": g.label, **totals_out(g.totals)}
            for g in selectors.usage_groups(rows, group_by=query.group_by)
        ]
        if query.group_by
        else []
    )
    return {
        "result": "success",
        "scope": "everyone" if user.is_staff else "own",
        "since": since,
        "until": until,
        "totals": totals_out(selectors.usage_totals(rows)),
        "groups": groups,
    }
