"""The AI-session API (SPEC 3.3): one handler per endpoint. Paths are mapped in `llm/urls.py`,
schemas are `llm/schemas.py`."""

from __future__ import annotations

import csv
import datetime as dt
from uuid import UUID

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone, translation
from ninja import Query, Status

from accounts.models import User
from chat.access import access_room
from chat.api import HistoryQuery, page_body
from chat.conversations import Conversation
from chat.selectors import message_page
from core.errors import ValidationFailed
from llm import budgets, personas, selectors, services, summaries
from llm.access import access_session
from llm.models import AiChatSession, LlmUsage
from llm.replies import usage_out
from llm.schemas import (
    SESSION_CREATED_TEXT,
    RoomBudgetIn,
    SessionListQuery,
    SessionPatchIn,
    StartSessionIn,
    SummaryIn,
    UsageQuery,
)
from llm.selectors import UsageGroup
from llm.workspace import session_out


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def session_detail(session: AiChatSession, *, viewer: User) -> dict[str, object]:
    return {
        "result": "success",
        "session": {
            **session_out(session, viewer=viewer),
            "deactivated_at": session.deactivated_at,
            "deactivated_by": session.deactivated_by.username if session.deactivated_by else None,
            "usage": selectors.session_usage(session=session).figures(),
        },
    }


def start_session(request: HttpRequest, payload: StartSessionIn) -> Status[dict[str, object]]:
    session = services.session_start(
        user=_user(request),
        room_id=payload.room_uuid,
        title=payload.title,
        model=payload.model,
        persona=payload.persona,
        system_prompt=payload.system_prompt,
    )
    # The seed's answer, whatever was chosen: the session itself is GET /sessions/<id>/.
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
        changed_after=query.changed_after,
        changes_read=session.changes,
    )
    return page_body(page, viewer=_user(request), owner_id=session.room.owner_id)


def patch_session(
    request: HttpRequest, session_id: UUID, payload: SessionPatchIn
) -> dict[str, object]:
    session = services.session_update(
        session_id=session_id,
        actor=_user(request),
        title=payload.title,
        model=payload.model,
        persona=payload.persona,
        system_prompt=payload.system_prompt,
    )
    return session_detail(session, viewer=_user(request))


def list_personas(request: HttpRequest) -> dict[str, object]:
    return {
        "result": "success",
        "personas": [
            {
                "key": p.key,
                "name": p.name,
                "system_prompt": personas.persona_prompt(p),
                "model": personas.persona_model(p),
                "is_default": p.is_default,
            }
            for p in personas.persona_list()
        ],
    }


def list_models(request: HttpRequest) -> dict[str, object]:
    return {
        "result": "success",
        "models": personas.allowed_models(),
        "default": personas.persona_model(personas.default_persona()),
    }


def room_summary(
    request: HttpRequest, room_id: UUID, payload: SummaryIn
) -> dict[str, object] | StreamingHttpResponse:
    plan = summaries.summary_plan(
        room_id=room_id,
        user=_user(request),
        since=payload.since,
        language=translation.get_language() or "en",
    )
    if "text/event-stream" not in request.headers.get("Accept", ""):
        return {"result": "success", **summaries.summary_json(plan)}
    response = StreamingHttpResponse(
        summaries.summary_events(plan), content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache"
    # Proxies that buffer answers (nginx does by default) would hold the summary back.
    response["X-Accel-Buffering"] = "no"
    return response


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


def usage(request: HttpRequest, query: Query[UsageQuery]) -> dict[str, object] | HttpResponse:
    user = _user(request)
    now = timezone.now()
    since = _bound(query.since, "since") or now.replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    until = _bound(query.until, "until") or now
    if until <= since:
        raise ValidationFailed("until: must be after since.")
    rows = selectors.usage_rows(
        user=None if user.is_staff else user,
        since=since,
        until=until,
        room_id=query.room_uuid,
        session_id=query.session_id,
    )
    groups = selectors.usage_groups(rows, group_by=query.group_by) if query.group_by else []
    if query.format == "csv":
        return usage_csv(rows, groups=groups, group_by=query.group_by)
    totals = selectors.usage_totals(rows)
    return {
        "result": "success",
        "scope": "everyone" if user.is_staff else "own",
        "since": since,
        "until": until,
        "totals": totals.figures(),
        "groups": [{"key": g.key, "label": g.label, **g.totals.figures()} for g in groups],
    }


CSV_CALL = [
    "created_at",
    "user",
    "room",
    "session_id",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "estimated",
    "finish_reason",
]


def _csv_cell(value: object) -> object:
    # A cell a spreadsheet would run as a formula (a room named "=HYPERLINK(...)") is quoted.
    text = str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def usage_csv(
    rows: QuerySet[LlmUsage], *, groups: list[UsageGroup], group_by: str | None
) -> HttpResponse:
    """The usage as CSV, figures written as in JSON: a row per group and then the totals, or
    (without group_by) a row per call."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="ai-usage.csv"'
    out = csv.writer(response)
    if group_by:
        # The columns are the API's figures, in its order (Totals.figures).
        totals = selectors.usage_totals(rows).figures()
        out.writerow([group_by, "label", *totals])
        for g in groups:
            out.writerow([_csv_cell(g.key), _csv_cell(g.label), *g.totals.figures().values()])
        out.writerow(["TOTAL", "", *totals.values()])
    else:
        out.writerow(CSV_CALL)
        for call in rows.select_related("user", "room").order_by("created_at", "id").iterator():
            one = usage_out(call)
            out.writerow(
                [
                    call.created_at.isoformat(),
                    _csv_cell(call.user.username),
                    _csv_cell(call.room.name if call.room else ""),
                    call.session_id or "",
                    _csv_cell(call.model),
                    one.prompt_tokens,
                    one.completion_tokens,
                    one.total_tokens,
                    one.cost_usd or "",
                    "yes" if one.estimated else "no",
                    call.finish_reason,
                ]
            )
    return response


def room_budget(request: HttpRequest, room_id: UUID) -> dict[str, object]:
    room = access_room(room_id=room_id, user=_user(request))
    state = budgets.room_budget_state(room=room, viewer=_user(request))
    return {"result": "success", "budget": state.figures()}


def set_room_budget(
    request: HttpRequest, room_id: UUID, payload: RoomBudgetIn
) -> dict[str, object]:
    room = budgets.room_budget_set(
        room_id=room_id, actor=_user(request), monthly_usd=payload.monthly_usd
    )
    state = budgets.room_budget_state(room=room, viewer=_user(request))
    return {"result": "success", "budget": state.figures()}
