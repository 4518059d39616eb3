"""Paths of the AI-session API, mounted by config.api under /api/llm/ (SPEC 3.3), and the
assistant's paths among the rooms' (`room_router`, mounted under /api/chat/)."""

from __future__ import annotations

from ninja import Router

from core.api import errors, signed_in
from llm import schemas, views

router = Router(tags=["llm"], auth=signed_in)

router.add_api_operation(
    "/start_session/",
    ["POST"],
    views.start_session,
    response={201: schemas.StartSessionOut, **errors(401, 404, 415)},
    summary="Open an AI session in a room (members only)",
)
router.add_api_operation(
    "/sessions/",
    ["GET"],
    views.list_sessions,
    response={200: schemas.SessionListOut, **errors(401)},
    summary="AI sessions of my rooms, newest first",
)
router.add_api_operation(
    "/sessions/{uuid:session_id}/",
    ["GET"],
    views.get_session,
    response={200: schemas.SessionDetailEnvelope, **errors(401, 404)},
    summary="An AI session with its usage totals",
)
router.add_api_operation(
    "/sessions/{uuid:session_id}/",
    ["PATCH"],
    views.patch_session,
    response={200: schemas.SessionDetailEnvelope, **errors(401, 403, 404, 410, 415)},
    summary="Change a session's title, model or persona (room owner, session creator or staff)",
)
router.add_api_operation(
    "/personas/",
    ["GET"],
    views.list_personas,
    response={200: schemas.PersonaListOut, **errors(401)},
    summary="The assistant's persona presets",
)
router.add_api_operation(
    "/models/",
    ["GET"],
    views.list_models,
    response={200: schemas.ModelListOut, **errors(401)},
    summary="The models a session may use",
)
router.add_api_operation(
    "/sessions/{uuid:session_id}/messages/",
    ["GET"],
    views.session_messages,
    response={200: schemas.SessionMessagesOut, **errors(401, 404)},
    summary="Messages of an AI session, oldest first",
    description=(
        "As room chat history: `after=` is exact and `changed_after=` brings the edits and "
        "deletions since (`changes`, `change_seq`)."
    ),
)
router.add_api_operation(
    "/sessions/{uuid:session_id}/deactivate/",
    ["POST"],
    views.deactivate_session,
    response={200: schemas.SessionDetailEnvelope, **errors(401, 403, 404, 415)},
    summary="End an AI session (room owner, session creator or staff)",
)
router.add_api_operation(
    "/usage/",
    ["GET"],
    views.usage,
    response={200: schemas.UsageOut, **errors(401)},
    summary="Token usage and cost: your own, or everyone's for staff",
    description="Totals and, with `group_by`, a row per day, model, room, session or user; "
    "`room_uuid` and `session_id` narrow it. `format=csv` answers the same figures as a CSV "
    "file (text/csv).",
    openapi_extra={
        "responses": {
            200: {
                "content": {
                    "text/csv": {
                        "schema": {"type": "string", "description": "format=csv: the same figures."}
                    },
                },
            }
        }
    },
)
# A room's AI budget lives here rather than in chat/api.py: chat knows rooms and messages and
# nothing of the assistant or what it costs (docs/ARCHITECTURE.md, the floors).
router.add_api_operation(
    "/rooms/{uuid:room_id}/budget/",
    ["GET"],
    views.room_budget,
    response={200: schemas.RoomBudgetEnvelope, **errors(401, 404)},
    summary="A room's monthly AI budget and what is left of it (members)",
)
router.add_api_operation(
    "/rooms/{uuid:room_id}/budget/",
    ["PUT"],
    views.set_room_budget,
    response={200: schemas.RoomBudgetEnvelope, **errors(401, 403, 404, 415)},
    summary="Set or remove a room's monthly AI budget (the room's owner)",
)

room_router = Router(tags=["chat"], auth=signed_in)
room_router.add_api_operation(
    "/rooms/{uuid:room_id}/summary/",
    ["POST"],
    views.room_summary,
    response={200: schemas.SummaryOut, **errors(401, 404, 415, 429, 502)},
    summary="Catch me up: a summary of the room chat for the caller alone",
    description=(
        "With `Accept: text/event-stream` the answer is server-sent events as the model "
        'writes: `delta` `{"delta"}`, then `done` with the fields below (no `result`), or '
        '`error` `{"code", "message"}` (the budget, checked when the stream starts, or '
        "the provider). Otherwise JSON once it is written. A provider call like any other: "
        "the caller's AI rate, budgets and usage."
    ),
)
