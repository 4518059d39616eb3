"""An AI session as JSON (SPEC 3.3), and the `/ws/me/` events about sessions (SPEC 9.1):
`session_started`, `session_ended` and `session_updated`, for every member of the session's
room. Each member's socket says for itself whether that member may end or change the
session (`can_end`, `can_edit`, from llm.access.may_end_session)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from accounts.models import User
from core.events import personal_event, publish_on_commit
from core.groups import room_members_group
from llm import personas
from llm.access import can_edit_session, can_end_session
from llm.events import SessionSettingsOut
from llm.models import AiChatSession
from llm.schemas import SessionOut

SessionEventKind = Literal["session_started", "session_ended", "session_updated"]


class SessionEvent(BaseModel):
    type: SessionEventKind
    session: dict[str, Any]


def session_settings_out(session: AiChatSession) -> SessionSettingsOut:
    """What steers the assistant in the session (SPEC 10.1): members see what it is told."""
    return SessionSettingsOut(
        session_id=str(session.pk),
        title=session.title,
        model=session.model,
        persona=session.persona.key if session.persona is not None else None,
        system_prompt=personas.session_steering(session).system_prompt,
    )


def session_out(session: AiChatSession, *, viewer: User) -> dict[str, object]:
    """The session as the API (3.3) and `/ws/me/` show it (SessionOut)."""
    return {
        "session_id": session.pk,
        "room_uuid": session.room_id,
        "room_name": session.room.name,
        "created_at": session.created_at,
        "is_active": session.is_active,
        "created_by": session.created_by.username,
        "can_end": can_end_session(user=viewer, session=session),
        **session_settings_out(session).model_dump(exclude={"session_id"}),
        "can_edit": can_edit_session(user=viewer, session=session),
    }


def announce_session(kind: SessionEventKind, session: AiChatSession, *, actor: User) -> None:
    """Tell the members of the session's room, once the change is committed."""
    body = SessionOut.model_validate(session_out(session, viewer=actor)).model_dump(mode="json")
    publish_on_commit(
        personal_event(
            room_members_group(session.room_id),
            {
                "kind": kind,
                "room_id": str(session.room_id),
                "session": body,
                "owner_id": session.room.owner_id,
                "creator_id": session.created_by_id,
            },
        )
    )
