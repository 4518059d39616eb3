"""Names of channel-layer groups: one helper each, so no code spells a group name by hand."""

from __future__ import annotations

from uuid import UUID


def room_group(room_id: UUID) -> str:
    return f"room.{room_id.hex}"


def session_group(session_id: UUID) -> str:
    return f"aisession.{session_id.hex}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"
