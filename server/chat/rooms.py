"""A room as JSON (SPEC 3.2, 9.2): the API's answers and the `/ws/me/` events that carry a room
are built here, from a `chat.selectors.RoomView`, so they say the same things."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from ninja import Field, Schema

from chat.models import Message
from chat.selectors import RoomView, preview


class LastMessageOut(Schema):
    message_id: int
    username: str
    preview: str = Field(..., description="The first 140 characters, as one line of plain text.")
    timestamp: datetime


class RoomOut(Schema):
    id: UUID
    name: str
    owner: str
    is_owner: bool
    participants: list[str]
    created_at: datetime
    unread_count: int = Field(
        ..., description="Room-chat messages of others after the caller's read marker."
    )
    mention_count: int = Field(..., description="Of those, the ones that mention the caller.")
    last_read_message_id: int = Field(
        ..., description="The caller's read marker: every room-chat message up to it is read."
    )
    last_message: LastMessageOut | None = Field(
        ..., description="The room's last room-chat message, or null."
    )
    online: list[str] = Field(..., description="Members with a socket open now, on any process.")
    ai_mentions: bool = Field(
        ..., description="Whether AI_Assistant answers @AI_Assistant in this room's chat."
    )


def last_message_out(message: Message | None) -> dict[str, object] | None:
    if message is None:
        return None
    return {
        "message_id": message.pk,
        "username": message.sender.username,
        "preview": preview(message.content),
        "timestamp": message.created_at,
    }


def room_out(view: RoomView, *, viewer_id: int) -> dict[str, object]:
    room = view.room
    return {
        "id": room.pk,
        "name": room.name,
        "owner": room.owner.username,
        "is_owner": room.owner_id == viewer_id,
        "participants": [p.username for p in room.participants.all()],
        "created_at": room.created_at,
        "unread_count": view.unread_count,
        "mention_count": view.mention_count,
        "last_read_message_id": view.last_read_message_id,
        "last_message": last_message_out(view.last_message),
        "online": view.online,
        "ai_mentions": room.ai_mentions,
    }


def room_json(view: RoomView, *, viewer_id: int) -> dict[str, object]:
    """The room as a socket frame carries it (JSON types only: ids and times as text)."""
    return RoomOut.model_validate(room_out(view, viewer_id=viewer_id)).model_dump(mode="json")


def last_message_json(message: Message | None) -> dict[str, object] | None:
    """A room's last message as a socket frame carries it (as `room_json` does the room)."""
    out = last_message_out(message)
    return None if out is None else LastMessageOut.model_validate(out).model_dump(mode="json")
