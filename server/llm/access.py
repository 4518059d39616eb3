"""Who may see and do what with AI sessions: every rule stated once, on top of the rooms'
membership rule (`chat.access.member_filter`). See chat.access for the conventions."""

from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet

from accounts.models import User
from chat.access import SocketAccess, member_rooms
from chat.models import ChatRoom
from core import closecodes
from core.errors import NotFound
from llm.models import AiChatSession


def visible_sessions(user: User) -> QuerySet[AiChatSession]:
    """The sessions of the rooms `user` is a member of."""
    return AiChatSession.objects.filter(room__in=member_rooms(user).values("pk"))


def access_session(*, session_id: UUID, user: User, staff_sees_all: bool = False) -> AiChatSession:
    """The session, if `user` is a member of its room (or staff, where the caller allows it);
    otherwise NotFound, exactly as for a session that does not exist."""
    visible = (
        AiChatSession.objects.all() if staff_sees_all and user.is_staff else visible_sessions(user)
    )
    session = (
        visible.select_related("room", "room__owner", "created_by", "persona")
        .filter(pk=session_id)
        .first()
    )
    if session is None:
        raise NotFound("No such AI session.")
    return session


def can_end_session(*, user: User, session: AiChatSession) -> bool:
    """The room's owner, the session's creator or staff may end an active session."""
    return may_end_session(
        user_id=user.pk,
        is_staff=user.is_staff,
        is_active=session.is_active,
        owner_id=session.room.owner_id,
        creator_id=session.created_by_id,
    )


def may_end_session(
    *, user_id: int, is_staff: bool, is_active: bool, owner_id: int, creator_id: int
) -> bool:
    """can_end_session from the ids alone (a `/ws/me/` socket tells each member whether they
    may end a session announced to all of them)."""
    return is_active and (is_staff or user_id in (owner_id, creator_id))


def can_edit_session(*, user: User, session: AiChatSession) -> bool:
    """Who may end a session may also change what steers it (SPEC 10.1), while it is active."""
    return can_end_session(user=user, session=session)


def session_socket_access(*, session_id: UUID, user: User) -> SocketAccess:
    """What the socket handshake needs to pick its close code (SPEC 4)."""
    row = AiChatSession.objects.filter(pk=session_id).values("room_id", "is_active").first()
    if row is None:
        return SocketAccess(closecodes.NOT_FOUND, None)
    if not member_rooms(user).filter(pk=row["room_id"]).exists():
        return SocketAccess(closecodes.FORBIDDEN, row["room_id"])
    if not row["is_active"]:
        return SocketAccess(closecodes.SESSION_ENDED, row["room_id"])
    return SocketAccess(None, row["room_id"])


def can_set_room_budget(*, user: User, room: ChatRoom) -> bool:
    """A room's monthly AI budget is its owner's to set (staff set any in the admin)."""
    return room.owner_id == user.pk
