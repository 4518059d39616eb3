"""/api/chat/: rooms, participants and room history (SPEC 3.2)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from accounts.models import User
from chat import selectors, services
from chat.access import access_room
from chat.conversations import Conversation
from chat.events import MessageOut, messages_out
from chat.rooms import RoomOut, room_out
from chat.selectors import Page, RoomView
from core.api import OkOut, errors, signed_in

router = Router(tags=["chat"], auth=signed_in)


class RoomEnvelope(Schema):
    result: Literal["success"]
    room: RoomOut


class RoomListEnvelope(Schema):
    result: Literal["success"]
    rooms: list[RoomOut]
    total_count: int


class RoomIn(Schema):
    name: str = Field(..., max_length=1000)


class RoomPatchIn(Schema):
    name: str | None = Field(None, max_length=1000, description="A new name.")
    ai_mentions: bool | None = Field(
        None, description="The owner turns AI_Assistant's answers to @AI_Assistant on or off."
    )


class ParticipantIn(Schema):
    username: str = Field(..., max_length=150)


class HistoryQuery(Schema):
    before: int | None = Field(None, ge=1, le=2**62)
    after: int | None = Field(None, ge=0, le=2**62)
    limit: int | None = Field(None, ge=1, le=200)
    # A `change_seq` from an earlier page or frame: also list what was edited or deleted since.
    changed_after: int | None = Field(None, ge=0, le=2**62)


class MessagePageEnvelope(Schema):
    result: Literal["success"]
    messages: list[MessageOut]
    has_more: bool
    # What to pass as `changed_after` next time (SPEC 9.4: catch-up of edits and deletions).
    change_seq: int
    # With `changed_after`: every message edited or deleted since, as it is now (a deleted one
    # as a tombstone), in the order of the changes; `has_more_changes` asks to go on from
    # `change_seq`.
    changes: list[MessageOut]
    has_more_changes: bool


class ReadIn(Schema):
    message_id: int = Field(
        ..., ge=0, le=2**62, description="The last room-chat message the reader has seen."
    )


class ReadOut(Schema):
    result: Literal["success"]
    room_id: UUID
    last_read_message_id: int
    unread_count: int
    mention_count: int


def _room_body(request: HttpRequest, room_id: UUID) -> dict[str, object]:
    user = _user(request)
    return {
        "result": "success",
        "room": room_out(selectors.room_view(user=user, room_id=room_id), viewer_id=user.pk),
    }


def page_body(page: Page, *, viewer: User, owner_id: int) -> dict[str, object]:
    """A history page, of a room's chat or an AI session, as the API gives it."""
    # Both lists in one pass: each detail source (the replies' threads, say) queries once.
    both = messages_out(
        [*page.messages, *page.changes],
        viewer_id=viewer.pk,
        mentions=page.mentions,
        owner_id=owner_id,
    )
    shown = len(page.messages)
    return {
        "result": "success",
        "messages": both[:shown],
        "has_more": page.has_more,
        "change_seq": page.change_seq,
        "changes": both[shown:],
        "has_more_changes": page.has_more_changes,
    }


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


@router.get(
    "/my-rooms/",
    response={200: RoomListEnvelope, **errors(401)},
    summary="Rooms I am a member of, latest activity first",
)
def my_rooms(request: HttpRequest) -> dict[str, object]:
    user = _user(request)
    views = selectors.room_views(user=user)
    return {
        "result": "success",
        "rooms": [room_out(v, viewer_id=user.pk) for v in views],
        "total_count": len(views),
    }


@router.post("/rooms/", response={201: RoomEnvelope, **errors(401, 415)}, summary="Create a room")
def create_room(request: HttpRequest, payload: RoomIn) -> Status[dict[str, object]]:
    room = services.room_create(owner=_user(request), name=payload.name)
    return Status(201, _room_body(request, room.pk))


@router.get(
    "/rooms/{uuid:room_id}/", response={200: RoomEnvelope, **errors(401, 404)}, summary="A room"
)
def get_room(request: HttpRequest, room_id: UUID) -> dict[str, object]:
    return _room_body(request, room_id)


@router.patch(
    "/rooms/{uuid:room_id}/",
    response={200: RoomEnvelope, **errors(401, 403, 404, 415)},
    summary="Rename a room, or turn the assistant's answers to mentions on or off (owner only)",
    description=(
        "Fields left out stay as they are. Members' `/ws/me/` get `room_updated`; a change of "
        "`ai_mentions` also sends `room_settings` on the room's socket."
    ),
)
def update_room(request: HttpRequest, room_id: UUID, payload: RoomPatchIn) -> dict[str, object]:
    services.room_update(
        room_id=room_id, actor=_user(request), name=payload.name, ai_mentions=payload.ai_mentions
    )
    return _room_body(request, room_id)


@router.delete(
    "/rooms/{uuid:room_id}/",
    response={200: OkOut, **errors(401, 403, 404)},
    summary="Delete a room with its chat and AI sessions (owner only)",
    description=(
        "Replies being written stop; every socket on the room and its sessions is closed with "
        "4404; members get `room_removed` (`deleted`) on `/ws/me/`. Usage records stay."
    ),
)
def delete_room(request: HttpRequest, room_id: UUID) -> dict[str, object]:
    services.room_delete(room_id=room_id, actor=_user(request))
    return {"result": "success"}


@router.post(
    "/rooms/{uuid:room_id}/read/",
    response={200: ReadOut, **errors(401, 404, 415)},
    summary="Move my read marker of the room's chat forward",
    description=(
        "The marker moves forward to `message_id` (never back, never past the last message); "
        "the answer has the counts that follow. The user's other `/ws/me/` sockets get `read`."
    ),
)
def mark_read(request: HttpRequest, room_id: UUID, payload: ReadIn) -> dict[str, object]:
    state = services.room_mark_read(
        room_id=room_id, user=_user(request), message_id=payload.message_id
    )
    return {
        "result": "success",
        "room_id": state.room_id,
        "last_read_message_id": state.last_read_message_id,
        "unread_count": state.unread_count,
        "mention_count": state.mention_count,
    }


@router.post(
    "/rooms/{uuid:room_id}/participants/",
    response={200: RoomEnvelope, **errors(401, 403, 404, 415)},
    summary="Add a participant (owner only)",
)
def add_participant(
    request: HttpRequest, room_id: UUID, payload: ParticipantIn
) -> dict[str, object]:
    services.room_add_participant(room_id=room_id, actor=_user(request), username=payload.username)
    return _room_body(request, room_id)


@router.delete(
    "/rooms/{uuid:room_id}/participants/{username}/",
    response={200: RoomEnvelope, **errors(401, 403, 404)},
    summary="Remove a participant (owner), or leave the room (that participant)",
)
def remove_participant(request: HttpRequest, room_id: UUID, username: str) -> dict[str, object]:
    user = _user(request)
    room = services.room_remove_participant(room_id=room_id, actor=user, username=username)
    if room.owner_id != user.pk and not room.participants.filter(pk=user.pk).exists():
        # The caller left: the room as it is now, with nothing of it theirs to count.
        left = RoomView(room, 0, 0, 0, None, [])
        return {"result": "success", "room": room_out(left, viewer_id=user.pk)}
    return _room_body(request, room_id)


@router.get(
    "/rooms/{uuid:room_id}/messages/",
    response={200: MessagePageEnvelope, **errors(401, 404)},
    summary="Room chat history, oldest first",
    description=(
        "`after=<message_id>`: every message committed after that one, exactly once (ids are "
        "committed in order within a conversation); ask again while `has_more`. "
        "`changed_after=<change_seq>` (from an earlier answer or a `message_edited` / "
        "`message_deleted` frame): also `changes`, every message edited or deleted since, as it "
        "is now, in change order; `change_seq` is what to pass next time. Each live "
        "`chat_message` frame names the message before it (`previous_id`)."
    ),
)
def room_messages(
    request: HttpRequest, room_id: UUID, query: Query[HistoryQuery]
) -> dict[str, object]:
    room = access_room(room_id=room_id, user=_user(request))
    page = selectors.message_page(
        conversation=Conversation(room_id=room_id),
        before=query.before,
        after=query.after,
        limit=query.limit,
        changed_after=query.changed_after,
        changes_read=room.changes,
    )
    return page_body(page, viewer=_user(request), owner_id=room.owner_id)
