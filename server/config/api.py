"""The JSON API: one NinjaAPI, one OpenAPI document at /api/openapi.json, docs at /api/docs."""

from __future__ import annotations

from ninja import NinjaAPI

from accounts.api import router as auth_router
from chat.api import router as chat_router
from core.api import JsonParser, install_error_handlers
from llm.urls import room_router as llm_room_router
from llm.urls import router as llm_router

api = NinjaAPI(
    title="Team chat with AI_Assistant",
    version="1.0.0",
    description=(
        "Rooms, room chat and AI sessions. Every answer carries `result`; errors also carry "
        "`code` and `message`. Authentication is Django's session cookie; unsafe requests must "
        "send JSON and, from a browser, an allowed Origin."
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
api.add_router("/llm/", llm_router)
