"""Reads of rooms and of the messages of a conversation."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from accounts.models import User
from chat.access import member_rooms, with_people
from chat.conversations import Conversation
from chat.models import ChatRoom, Message
from core.db import fetch_one
from core.errors import ValidationFailed


def room_list_for_user(*, user: User) -> list[ChatRoom]:
    """The rooms `user` is a member of, newest first (two queries whatever their number)."""
    ids = member_rooms(user).values("pk")
    return list(with_people(ChatRoom.objects.filter(pk__in=ids)).order_by("-created_at", "-pk"))


@dataclass(frozen=True)
class Page:
    messages: list[Message]
    has_more: bool


def message_page(
    *,
    conversation: Conversation,
    before: int | None = None,
    after: int | None = None,
    limit: int | None = None,
) -> Page:
    """One page of a conversation's messages, oldest first.

    - neither bound: the latest `limit`; `has_more` says older ones exist;
    - `before`: the `limit` just before that id; `has_more` says older ones exist;
    - `after`: the `limit` just after that id; `has_more` says newer ones exist (a reconnecting
      client fetches what it missed and asks again while `has_more`).
    """
    size = min(max(limit or settings.HISTORY_PAGE_DEFAULT, 1), settings.HISTORY_PAGE_MAX)
    qs = Message.objects.filter(
        room_id=conversation.room_id, ai_session_id=conversation.session_id
    ).select_related("sender", "ai_reply")
    if before is not None:
        qs = qs.filter(id__lt=before)
    if after is not None:
        rows = list(qs.filter(id__gt=after).order_by("id")[: size + 1])
        return Page(messages=rows[:size], has_more=len(rows) > size)
    rows = list(qs.order_by("-id")[: size + 1])
    page = rows[:size]
    page.reverse()
    return Page(messages=page, has_more=len(rows) > size)


def _client_id_is_known(*, sender: User, client_id: str) -> bool:
    """Whether the sender already stored a message with this id: the check every new message
    pays (clients send one with each), so one indexed statement without the ORM's query
    building (see chat.services.message_insert for why that matters on this path)."""
    table = connection.ops.quote_name(Message._meta.db_table)
    sql = f"SELECT 1 FROM {table} WHERE sender_id = %s AND client_id = %s"  # noqa: S608
    return fetch_one(sql, [sender.pk, client_id]) is not None


def message_by_client_id(
    *, sender: User, client_id: str, conversation: Conversation
) -> Message | None:
    """The sender's message stored under `client_id` in this conversation: the one a retry
    repeats. A client_id already used elsewhere is an error, not a retry: the new message would
    otherwise be dropped unsaid."""
    if not _client_id_is_known(sender=sender, client_id=client_id):
        return None
    message = (
        Message.objects.filter(sender=sender, client_id=client_id).select_related("sender").first()
    )
    if message is None:
        return None
    if Conversation.of(message) != conversation:
        raise ValidationFailed(
            "client_id: already used for another message; make up a new one for each message."
        )
    return message
