"""Names of channel-layer groups: one helper each, so no code spells a group name by hand."""

from __future__ import annotations

from uuid import UUID


def room_group(room_id: UUID) -> str:
    return f"room.{room_id.hex}"


def session_group(session_id: UUID) -> str:
    return f"{session_group_prefix()}{session_id.hex}"


def session_group_prefix() -> str:
    return "aisession."


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def room_members_group(room_id: UUID) -> str:
    """The `/ws/me/` sockets of a room's members: what happens in the room, told to those who
    do not have it open (SPEC 9.1)."""
    return f"members.{room_id.hex}"
