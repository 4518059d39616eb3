"""State changes of rooms and messages. Real-time events leave from here, after commit."""

from __future__ import annotations

import logging
from functools import partial
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.models import User
from accounts.selectors import user_get_by_username, user_is_assistant
from chat.events import chat_message_frames
from chat.models import ChatRoom, Message
from chat.selectors import access_room, message_by_client_id, room_is_member
from core.errors import EmptyMessage, Forbidden, MessageTooLong, NotFound, ValidationFailed
from core.events import control_event, frame_event, publish_on_commit
from core.groups import room_group, user_group
from core.ws import CLOSE_FORBIDDEN
from ops import metrics

logger = logging.getLogger(__name__)

ROOM_NAME_MAX = 100
CLIENT_ID_MAX = 64


def room_create(*, owner: User, name: str) -> ChatRoom:
    name = name.strip()
    if not name:
        raise ValidationFailed("name: must not be empty.")
    if len(name) > ROOM_NAME_MAX:
        raise ValidationFailed(f"name: at most {ROOM_NAME_MAX} characters.")
    room = ChatRoom.objects.create(owner=owner, name=name)
    logger.info("Room %s created by user %s", room.pk, owner.pk)
    return room


@transaction.atomic
def room_add_participant(*, room_id: UUID, actor: User, username: str) -> ChatRoom:
    room = access_room(room_id=room_id, user=actor)
    if room.owner_id != actor.pk:
        raise Forbidden("Only the room's owner can add participants.")
    user = user_get_by_username(username=username.strip())
    if user is None:
        raise NotFound(f"No user named '{username.strip()}'.")
    if user_is_assistant(user=user):
        raise ValidationFailed(
            f"username: {settings.AI_USERNAME} joins through AI sessions, not as a participant."
        )
    if user.pk == room.owner_id:
        raise ValidationFailed("username: the owner is already a member.")
    room.participants.add(user)
    return access_room(room_id=room_id, user=actor)


@transaction.atomic
def room_remove_participant(*, room_id: UUID, actor: User, username: str) -> ChatRoom:
    """The owner removes a participant, or a participant leaves. Their sockets on the room (and
    its AI sessions) are closed with 4403 once the change is committed."""
    room = access_room(room_id=room_id, user=actor)
    target = next(
        (p for p in room.participants.all() if p.username.casefold() == username.casefold()), None
    )
    if target is None:
        if room.owner.username.casefold() == username.casefold():
            raise ValidationFailed("username: the owner cannot leave or be removed.")
        raise NotFound(f"'{username}' is not a participant of this room.")
    if actor.pk not in (room.owner_id, target.pk):
        raise Forbidden("Only the room's owner can remove other participants.")
    room.participants.remove(target)
    publish_on_commit(
        control_event(user_group(target.pk), "close", code=CLOSE_FORBIDDEN, room_id=str(room.pk))
    )
    logger.info("User %s left room %s (by user %s)", target.pk, room.pk, actor.pk)
    if actor.pk == target.pk:
        return room
    return access_room(room_id=room_id, user=actor)


def _storable(text: str) -> bool:
    """Whether every database stores `text` as sent: PostgreSQL refuses NUL, and a JSON
    escape such as \\ud800 yields a lone surrogate that no database can encode."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def message_clean(*, text: object, client_id: object = None) -> tuple[str, str | None]:
    """Check a message's text and client id (SPEC 4.1); returns them trimmed."""
    if not isinstance(text, str):
        raise EmptyMessage("The message must be a non-empty string.")
    content = text.strip()
    if not content:
        raise EmptyMessage()
    if len(content) > settings.MAX_MESSAGE_CHARS:
        raise MessageTooLong(f"The message is longer than {settings.MAX_MESSAGE_CHARS} characters.")
    if not _storable(content):
        raise ValidationFailed("The message must be Unicode text without NUL characters.")
    if client_id is not None and (
        not isinstance(client_id, str)
        or not 0 < len(client_id) <= CLIENT_ID_MAX
        or not _storable(client_id)
    ):
        raise ValidationFailed(
            f"client_id must be Unicode text of 1 to {CLIENT_ID_MAX} characters, without NUL."
        )
    return content, client_id


def message_post(
    *, room_id: UUID, sender: User, content: str, client_id: str | None
) -> tuple[Message, bool]:
    """Save a room-chat message and broadcast it after commit.

    Returns the message and whether it is new: a retry with a known `client_id` returns the
    stored one and broadcasts nothing. Membership is checked in the same transaction.
    """
    try:
        with transaction.atomic():
            if not room_is_member(room_id=room_id, user=sender):
                raise NotFound("No such room.")
            message = Message.objects.create(
                room_id=room_id, sender=sender, content=content, client_id=client_id
            )
            message.sender = sender
            others, mine = chat_message_frames(message)
            publish_on_commit(
                frame_event(room_group(room_id), others, sender_id=sender.pk, self_frame=mine)
            )
            transaction.on_commit(partial(metrics.record_message, "room"))
    except IntegrityError:
        if client_id is None:
            raise
        existing = message_by_client_id(sender=sender, client_id=client_id)
        if existing is None:
            raise
        return existing, False
    return message, True
