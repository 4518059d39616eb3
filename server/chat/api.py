"""/api/chat/: rooms, participants and room history (SPEC 3.2)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from accounts.models import User
from chat import selectors, services
from chat.access import access_room
from chat.conversations import Conversation
from chat.events import MessageOut, messages_out
from chat.models import ChatRoom
from chat.selectors import Page
from core.api import errors, signed_in

router = Router(tags=["chat"], auth=signed_in)


class RoomOut(Schema):
    id: UUID
    name: str
    owner: str
    is_owner: bool
    participants: list[str]
    created_at: datetime
    ai_mentions: bool = Field(
        ..., description="Whether AI_Assistant answers @AI_Assistant in this room's chat."
    )


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
    ai_mentions: bool | None = Field(
        None, description="The owner turns AI_Assistant's answers to @AI_Assistant on or off."
    )


class ParticipantIn(Schema):
    username: str = Field(..., max_length=150)


class HistoryQuery(Schema):
    before: int | None = Field(None, ge=1, le=2**62)
    after: int | None = Field(None, ge=0, le=2**62)
    limit: int | None = Field(None, ge=1, le=200)


class MessagePageEnvelope(Schema):
    result: Literal["success"]
    messages: list[MessageOut]
    has_more: bool


def room_out(room: ChatRoom, *, viewer: User) -> dict[str, object]:
    return {
        "id": room.pk,
        "name": room.name,
        "owner": room.owner.username,
        "is_owner": room.owner_id == viewer.pk,
        "participants": [p.username for p in room.participants.all()],
        "created_at": room.created_at,
        "ai_mentions": room.ai_mentions,
    }


def page_body(page: Page, *, viewer: User) -> dict[str, object]:
    return {
        "result": "success",
        "messages": messages_out(page.messages, viewer_id=viewer.pk),
        "has_more": page.has_more,
    }


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


@router.get(
    "/my-rooms/", response={200: RoomListEnvelope, **errors(401)}, summary="Rooms I am a member of"
)
def my_rooms(request: HttpRequest) -> dict[str, object]:
    rooms = selectors.room_list_for_user(user=_user(request))
    return {
        "result": "success",
        "rooms": [room_out(r, viewer=_user(request)) for r in rooms],
        "total_count": len(rooms),
    }


@router.post("/rooms/", response={201: RoomEnvelope, **errors(401, 415)}, summary="Create a room")
def create_room(request: HttpRequest, payload: RoomIn) -> Status[dict[str, object]]:
    room = services.room_create(owner=_user(request), name=payload.name)
    room = access_room(room_id=room.pk, user=_user(request))
    return Status(201, {"result": "success", "room": room_out(room, viewer=_user(request))})


@router.get(
    "/rooms/{uuid:room_id}/", response={200: RoomEnvelope, **errors(401, 404)}, summary="A room"
)
def get_room(request: HttpRequest, room_id: UUID) -> dict[str, object]:
    room = access_room(room_id=room_id, user=_user(request))
    return {"result": "success", "room": room_out(room, viewer=_user(request))}


@router.patch(
    "/rooms/{uuid:room_id}/",
    response={200: RoomEnvelope, **errors(401, 403, 404, 415)},
    summary="Change a room's settings (owner only)",
)
def patch_room(request: HttpRequest, room_id: UUID, payload: RoomPatchIn) -> dict[str, object]:
    if payload.ai_mentions is None:
        room = access_room(room_id=room_id, user=_user(request))
    else:
        room = services.room_set_ai_mentions(
            room_id=room_id, actor=_user(request), enabled=payload.ai_mentions
        )
    return {"result": "success", "room": room_out(room, viewer=_user(request))}


@router.post(
    "/rooms/{uuid:room_id}/participants/",
    response={200: RoomEnvelope, **errors(401, 403, 404, 415)},
    summary="Add a participant (owner only)",
)
def add_participant(
    request: HttpRequest, room_id: UUID, payload: ParticipantIn
) -> dict[str, object]:
    room = services.room_add_participant(
        room_id=room_id, actor=_user(request), username=payload.username
    )
    return {"result": "success", "room": room_out(room, viewer=_user(request))}


@router.delete(
    "/rooms/{uuid:room_id}/participants/{username}/",
    response={200: RoomEnvelope, **errors(401, 403, 404)},
    summary="Remove a participant (owner), or leave the room (that participant)",
)
def remove_participant(request: HttpRequest, room_id: UUID, username: str) -> dict[str, object]:
    room = services.room_remove_participant(
        room_id=room_id, actor=_user(request), username=username
    )
    return {"result": "success", "room": room_out(room, viewer=_user(request))}


@router.get(
    "/rooms/{uuid:room_id}/messages/",
    response={200: MessagePageEnvelope, **errors(401, 404)},
    summary="Room chat history, oldest first",
)
def room_messages(
    request: HttpRequest, room_id: UUID, query: Query[HistoryQuery]
) -> dict[str, object]:
    access_room(room_id=room_id, user=_user(request))
    page = selectors.message_page(
        conversation=Conversation(room_id=room_id),
        before=query.before,
        after=query.after,
        limit=query.limit,
    )
    return page_body(page, viewer=_user(request))
