"""Reads of rooms and messages, with the one access check for a room."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet

from accounts.models import User
from chat.models import ChatRoom, Message
from core.errors import NotFound, ValidationFailed


def member_filter(user: User) -> Q:
    """Rooms `user` is a member of (owner or participant)."""
    return Q(owner=user) | Q(participants=user)


def room_is_member(*, room_id: UUID, user: User) -> bool:
    return ChatRoom.objects.filter(member_filter(user), pk=room_id).exists()


def room_exists(*, room_id: UUID) -> bool:
    return ChatRoom.objects.filter(pk=room_id).exists()


def _with_people(qs: QuerySet[ChatRoom]) -> QuerySet[ChatRoom]:
    return qs.select_related("owner").prefetch_related(
        Prefetch("participants", queryset=User.objects.only("id", "username").order_by("username"))
    )


def access_room(*, room_id: UUID, user: User) -> ChatRoom:
    """The room, if `user` is a member; otherwise NotFound, exactly as for a missing room."""
    room = _with_people(ChatRoom.objects.filter(pk=room_id)).first()
    if room is None or not (
        room.owner_id == user.pk or any(p.pk == user.pk for p in room.participants.all())
    ):
        raise NotFound("No such room.")
    return room


def room_list_for_user(*, user: User) -> list[ChatRoom]:
    """The rooms `user` is a member of, newest first (two queries whatever their number)."""
    ids = ChatRoom.objects.filter(member_filter(user)).values("pk")
    return list(_with_people(ChatRoom.objects.filter(pk__in=ids)).order_by("-created_at", "-pk"))


@dataclass(frozen=True)
class Page:
    messages: list[Message]
    has_more: bool


def message_page(
    *,
    room_id: UUID,
    before: int | None = None,
    after: int | None = None,
    limit: int | None = None,
    session_id: UUID | None = None,
) -> Page:
    """One page of a room's chat (or, with `session_id`, of one AI session), oldest first.

    - neither bound: the latest `limit`; `has_more` says older ones exist;
    - `before`: the `limit` just before that id; `has_more` says older ones exist;
    - `after`: the `limit` just after that id; `has_more` says newer ones exist (a reconnecting
      client fetches what it missed and asks again while `has_more`).
    """
    size = min(max(limit or settings.HISTORY_PAGE_DEFAULT, 1), settings.HISTORY_PAGE_MAX)
    qs = Message.objects.filter(room_id=room_id, ai_session_id=session_id).select_related("sender")
    if session_id is not None:
        qs = qs.select_related("ai_reply")
    if before is not None:
        qs = qs.filter(id__lt=before)
    if after is not None:
        rows = list(qs.filter(id__gt=after).order_by("id")[: size + 1])
        return Page(messages=rows[:size], has_more=len(rows) > size)
    rows = list(qs.order_by("-id")[: size + 1])
    page = rows[:size]
    page.reverse()
    return Page(messages=page, has_more=len(rows) > size)


def message_by_client_id(
    *, sender: User, client_id: str, room_id: UUID | None, session_id: UUID | None = None
) -> Message | None:
    """The sender's message stored under `client_id` in this room's chat (`room_id`) or in
    this AI session (`session_id`): the one a retry repeats. A client_id already used
    elsewhere is an error, not a retry: the new message would otherwise be dropped unsaid."""
    message = (
        Message.objects.filter(sender=sender, client_id=client_id).select_related("sender").first()
    )
    if message is None:
        return None
    if message.ai_session_id != session_id or (room_id is not None and message.room_id != room_id):
        raise ValidationFailed(
            "client_id: already used for another message; make up a new one for each message."
        )
    return message
