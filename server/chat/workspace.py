"""The frames of `/ws/me/` about rooms (SPEC 9.1), and the events the chat services publish for
them.

Each event is a personal one (core.events.personal_event): it carries what happened, and each
`/ws/me/` socket makes the frame for its own user (its unread count, whether it is the one
mentioned, whether it owns the room). Events about one user go to that user's group; events
about a room to the group of its members' `/ws/me/` sockets (core.groups.room_members_group),
so that a room message costs one event however many members the room has.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel

from accounts.models import User
from chat.models import Message
from chat.rooms import last_message_json
from chat.selectors import preview, room_ids_of
from core.db import db_async
from core.events import apublish_all, personal_event, publish_on_commit
from core.groups import room_members_group, user_group

RemovalReason = Literal["removed", "left", "deleted"]


# --- the frames, one schema each (the sockets build them; tests check them) ------------------


class RoomAdded(BaseModel):
    type: Literal["room_added"] = "room_added"
    room: dict[str, Any]


class RoomRemoved(BaseModel):
    type: Literal["room_removed"] = "room_removed"
    room_id: str
    reason: RemovalReason


class RoomUpdated(BaseModel):
    type: Literal["room_updated"] = "room_updated"
    room: dict[str, Any]


class RoomActivity(BaseModel):
    type: Literal["room_activity"] = "room_activity"
    room_id: str
    message_id: int
    username: str
    preview: str
    timestamp: str
    unread_count: int
    mention: bool


class RoomChanged(BaseModel):
    """A room-chat message edited or deleted: the recipient's counts now and, when the room's
    last message changed (it was the one edited or deleted), the last message now (null when
    the room has none left)."""

    type: Literal["room_changed"] = "room_changed"
    room_id: str
    unread_count: int
    mention_count: int
    last_changed: bool
    last_message: dict[str, Any] | None


class MemberChange(BaseModel):
    type: Literal["member_added", "member_removed"]
    room_id: str
    username: str


class Presence(BaseModel):
    type: Literal["presence"] = "presence"
    username: str
    online: bool


class Read(BaseModel):
    type: Literal["read"] = "read"
    room_id: str
    last_read_message_id: int
    unread_count: int
    mention_count: int


# --- the events ----------------------------------------------------------------------------


def room_activity_event(message: Message, mentioned: list[tuple[int, str]]) -> dict[str, Any]:
    """A new room-chat message, for the members who do not have the room open."""
    return personal_event(
        room_members_group(message.room_id),
        {
            "kind": "room_activity",
            "room_id": str(message.room_id),
            "message_id": message.pk,
            "sender_id": message.sender_id,
            "username": message.sender.username,
            "preview": preview(message.content),
            "timestamp": message.created_at.isoformat(),
            "mentioned": [user_id for user_id, _ in mentioned],
        },
    )


def room_changed_event(
    message: Message, *, mentioned_before: list[int], mentioned: list[int]
) -> dict[str, Any]:
    """A room-chat message edited or deleted (chat.edits), for the members' `/ws/me/` sockets:
    whom it mentioned before and mentions now (nobody once deleted), and, when it was the room's
    last message, the room's last message now. Each socket works out its own user's counts."""
    latest = (
        Message.objects.filter(
            room_id=message.room_id, ai_session__isnull=True, deleted_at__isnull=True
        )
        .select_related("sender")
        .order_by("-id")
        .first()
    )
    last_changed = latest is None or latest.pk <= message.pk
    return personal_event(
        room_members_group(message.room_id),
        {
            "kind": "room_changed",
            "room_id": str(message.room_id),
            "message_id": message.pk,
            "sender_id": message.sender_id,
            "deleted": message.deleted_at is not None,
            "mentioned_before": mentioned_before,
            "mentioned": mentioned,
            "last_changed": last_changed,
            "last_message": last_message_json(latest) if last_changed else None,
        },
    )


def announce_room_added(*, user_id: int, room: dict[str, Any]) -> None:
    """`room` (room_json for `user_id`) is new to that user: created, or joined."""
    publish_on_commit(
        personal_event(
            user_group(user_id), {"kind": "room_added", "room_id": room["id"], "room": room}
        )
    )


def announce_room_removed(*, user_id: int, room_id: UUID, reason: RemovalReason) -> None:
    publish_on_commit(
        personal_event(
            user_group(user_id),
            {"kind": "room_removed", "room_id": str(room_id), "reason": reason},
        )
    )


def announce_room_deleted(*, room_id: UUID) -> None:
    publish_on_commit(
        personal_event(
            room_members_group(room_id),
            {"kind": "room_removed", "room_id": str(room_id), "reason": "deleted"},
        )
    )


def announce_room_updated(*, room: dict[str, Any]) -> None:
    """`room` as room_json made it for one member; each socket puts its own user's counts and
    ownership in."""
    publish_on_commit(
        personal_event(
            room_members_group(UUID(room["id"])),
            {"kind": "room_updated", "room_id": room["id"], "room": room},
        )
    )


def announce_member(
    *, kind: Literal["member_added", "member_removed"], room_id: UUID, user_id: int, username: str
) -> None:
    publish_on_commit(
        personal_event(
            room_members_group(room_id),
            {"kind": kind, "room_id": str(room_id), "user_id": user_id, "username": username},
        )
    )


def announce_read(
    *,
    user_id: int,
    room_id: UUID,
    last_read_message_id: int,
    unread_count: int,
    mention_count: int,
) -> None:
    publish_on_commit(
        personal_event(
            user_group(user_id),
            {
                "kind": "read",
                "room_id": str(room_id),
                "last_read_message_id": last_read_message_id,
                "unread_count": unread_count,
                "mention_count": mention_count,
            },
        )
    )


async def announce_presence(user_id: int, online: bool) -> None:
    """core.sockets' announcer: a change of presence, to the members of the user's rooms."""
    found = await db_async(_presence_events)(user_id=user_id, online=online)
    await apublish_all(found)


def _presence_events(*, user_id: int, online: bool) -> list[dict[str, Any]]:
    username = User.objects.filter(pk=user_id).values_list("username", flat=True).first()
    if username is None:
        return []
    return presence_events(
        user_id=user_id, username=username, online=online, room_ids=room_ids_of(user_id=user_id)
    )


def presence_events(
    *, user_id: int, username: str, online: bool, room_ids: list[UUID]
) -> list[dict[str, Any]]:
    """A change of presence, for the members of each room the user is in (a member sharing
    several of them is told once: its socket drops the copies that change nothing)."""
    payload = {"kind": "presence", "user_id": user_id, "username": username, "online": online}
    return [personal_event(room_members_group(room_id), payload) for room_id in room_ids]
