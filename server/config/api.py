"""The JSON API: one NinjaAPI, one OpenAPI document at /api/openapi.json, docs at /api/docs."""

from __future__ import annotations

from ninja import NinjaAPI

from accounts.api import router as auth_router
from chat.api import router as chat_router
from chat.message_api import router as chat_message_router
from core.api import JsonParser, install_error_handlers
from llm.urls import room_router as llm_room_router
from llm.urls import router as llm_router

# The sockets beside the API that the live workspace adds (SPEC 9.1, 9.3); the README's
# WebSocket section has the whole protocol.
WORKSPACE_SOCKETS = """

**WebSockets.** `/ws/chat/<room_uuid>/` and `/ws/llm/<session_id>/` also take
`{"type": "typing"}` (the others get `{"type": "typing", "username", "usernames"}`: each user at
most once per 2 s, never on their own sockets; the typists of a second come in one frame); an AI
session's sockets get `session_viewers` `{usernames}`
on connect and on every change. Every socket answers `{"type": "ping"}` with `{"type": "pong"}`.
Messages in frames and history carry `mentions` (usernames).

`/ws/me/` (signed in, else closed with 4401) carries what happens outside the open page, for
every room of the user, on every process, in order, once: `room_added` `{room}`,
`room_removed` `{room_id, reason: removed|left|deleted}`, `room_updated` `{room}`,
`room_activity` `{room_id, message_id, username, preview, timestamp, unread_count, mention}`,
`session_started` / `session_ended` / `session_updated` `{session}`, `member_added` /
`member_removed` `{room_id, username}`, `presence` `{username, online}` (people who share a
room with the user) and `read` `{room_id, last_read_message_id, unread_count, mention_count}`
(the user read on another tab or device). Open it, then fetch `/api/chat/my-rooms/`."""

api = NinjaAPI(
    title="Team chat with AI_Assistant",
    version="1.0.0",
    description=(
        "Rooms, room chat and AI sessions. Every answer carries `result`; errors also carry "
        "`code` and `message`. Authentication is Django's session cookie; unsafe requests must "
        "send JSON and, from a browser, an allowed Origin." + WORKSPACE_SOCKETS
    ),
    urls_namespace="api",
    parser=JsonParser(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)
install_error_handlers(api)
api.add_router("/auth/", auth_router)
api.add_router("/chat/", chat_router)
api.add_router("/chat/", llm_room_router)
api.add_router("/chat/", chat_message_router)
api.add_router("/llm/", llm_router)
