"""AI sessions as a member starts and joins them, for the tests of several modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async


async def start_session(
    client_for: Callable[..., Any], user: Any, room: Any, **settings: Any
) -> str:
    """Start a session in `room` through the API, as `user`, with the session `settings`
    (title, model, persona, system_prompt) if any; its id."""
    c = await sync_to_async(client_for)(user)
    body = {"room_uuid": str(room.pk), **settings}
    r = await sync_to_async(c.post_json)("/api/llm/start_session/", body)
    assert r.status_code == 201, r.content
    return str(r.json()["session_id"])


async def open_session(
    client_for: Callable[..., Any], ws: Callable[..., Any], user: Any, room: Any
) -> tuple[str, Any]:
    """Start a session and open `user`'s socket on it, past the ai_joined frame."""
    session = await start_session(client_for, user, room)
    sock = await ws(f"/ws/llm/{session}/", user)
    await sock.recv_type("ai_joined")
    return session, sock
