"""Who may see and do what with rooms and their messages: every rule stated once.

`access_*` fetches an object and checks the caller may see it, raising NotFound exactly as for
an object that does not exist (ids cannot be probed); `can_*` answers a yes/no that the API also
tells its clients, so no client re-derives a rule. The API, the sockets and the pages all ask
here; `llm.access` builds the AI sessions' rules on `member_filter`.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db.models import Prefetch, Q, QuerySet

from accounts.models import User
from accounts.selectors import user_is_assistant
from chat.models import ChatRoom, Message
from core import closecodes
from core.errors import NotFound


def member_filter(user_id: int) -> Q:
    """Rooms the user is a member of: the owner or a participant. The one statement of the
    membership rule; the message write path compiles it into its insert (chat.services)."""
    return Q(owner_id=user_id) | Q(participants__id=user_id)


def member_rooms(user: User) -> QuerySet[ChatRoom]:
    return ChatRoom.objects.filter(member_filter(user.pk))


def is_member(*, user: User, room_id: UUID) -> bool:
    return member_rooms(user).filter(pk=room_id).exists()


def room_exists(*, room_id: UUID) -> bool:
    return ChatRoom.objects.filter(pk=room_id).exists()


def with_people(qs: QuerySet[ChatRoom]) -> QuerySet[ChatRoom]:
    """Rooms with their owner and participants, in two queries whatever their number."""
    return qs.select_related("owner").prefetch_related(
        Prefetch("participants", queryset=User.objects.only("id", "username").order_by("username"))
    )


def access_room(*, room_id: UUID, user: User) -> ChatRoom:
    """The room, if `user` is a member; otherwise NotFound, exactly as for a missing room."""
    room = with_people(member_rooms(user).filter(pk=room_id)).first()
    if room is None:
        raise NotFound("No such room.")
    return room


def can_manage_members(*, user: User, room: ChatRoom) -> bool:
    """Adding and removing participants is the owner's."""
    return room.owner_id == user.pk


def can_manage_room(*, user: User, room: ChatRoom) -> bool:
    """A room's settings (its name, whether the assistant answers mentions) and deleting it
    are its owner's (SPEC 9.2, 10.3)."""
    return room.owner_id == user.pk


def can_remove(*, actor: User, room: ChatRoom, target: User) -> bool:
    """The owner removes anyone but themselves; a participant may leave."""
    return can_manage_members(user=actor, room=room) or actor.pk == target.pk


def access_message(*, message_id: int, user: User) -> tuple[Message, ChatRoom]:
    """A message of a room `user` is a member of (room chat or any of its AI sessions), with
    its room; otherwise NotFound, exactly as for a missing message."""
    message = (
        Message.objects.filter(pk=message_id, room__in=member_rooms(user).values("pk"))
        .select_related("sender", "room")
        .first()
    )
    if message is None:
        raise NotFound("No such message.")
    return message, message.room


def edit_refusal(*, user_id: int | None, message: Message) -> str | None:
    """Why `user_id` may not edit the message, or None: its sender edits a message; nobody
    edits the assistant's replies, a note about the conversation or a deleted message."""
    if message.deleted_at is not None:
        return "A deleted message cannot be edited."
    if message.note is not None:
        return "A note about the conversation cannot be edited."
    if user_is_assistant(user=message.sender):
        return "The assistant's replies cannot be edited."
    if user_id is None or message.sender_id != user_id:
        return "Only its sender can edit a message."
    return None


def delete_refusal(*, user_id: int | None, message: Message, owner_id: int | None) -> str | None:
    """Why `user_id` may not delete the message, or None: its sender or the room's owner
    deletes a message (the owner also the assistant's replies). A note about the conversation
    (who changed the session's model...) is its record and stays."""
    if message.note is not None:
        return "A note about the conversation cannot be deleted."
    if user_id is None or user_id not in (message.sender_id, owner_id):
        return "Only its sender or the room's owner can delete a message."
    return None


def can_edit_message(*, user_id: int | None, message: Message) -> bool:
    return edit_refusal(user_id=user_id, message=message) is None


def can_delete_message(*, user_id: int | None, message: Message, owner_id: int | None) -> bool:
    return (
        message.deleted_at is None
        and delete_refusal(user_id=user_id, message=message, owner_id=owner_id) is None
    )


@dataclass(frozen=True)
class SocketAccess:
    """Whether a user's socket may join a conversation, and the conversation's room."""

    refusal: int | None  # the close code (SPEC 4), or None: may join
    room_id: UUID | None


def room_socket_access(*, room_id: UUID, user: User) -> SocketAccess:
    """What a room-chat socket's handshake needs: 4404 for no such room, 4403 for not a
    member (SPEC 4)."""
    if is_member(user=user, room_id=room_id):
        return SocketAccess(None, room_id)
    refusal = closecodes.FORBIDDEN if room_exists(room_id=room_id) else closecodes.NOT_FOUND
    return SocketAccess(refusal, room_id)
