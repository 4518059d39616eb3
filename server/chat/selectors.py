"""Reads of rooms and of the messages of a conversation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from accounts.models import User
from chat.access import member_filter, member_rooms, with_people
from chat.conversations import Conversation
from chat.models import ChatRoom, Mention, Message, ReadMarker
from core import sockets
from core.db import fetch_one
from core.errors import NotFound, ValidationFailed

PREVIEW_CHARS = 140


def preview(text: str) -> str:
    """A message as one line of plain text, at most PREVIEW_CHARS characters."""
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1] + "…"


def _counted(qs: QuerySet[Message] | QuerySet[Mention]) -> Coalesce:
    return Coalesce(
        Subquery(qs.order_by().values("room").annotate(n=Count("pk")).values("n")[:1]),
        Value(0),
        output_field=IntegerField(),
    )


def with_activity(qs: QuerySet[ChatRoom], *, user_id: int) -> QuerySet[ChatRoom]:
    """Rooms annotated, in the same query, with what `user_id` has not read of their chat:
    `last_read` (the read marker, 0 if none), `unread` (room-chat messages of others after
    it), `mentions_unread` (of those, the ones naming the user) and `last_message_id`. A
    deleted message is neither unread nor the last message (its mentions go with it)."""
    marker = ReadMarker.objects.filter(room=OuterRef("pk"), user_id=user_id)
    room_chat = Message.objects.filter(
        room=OuterRef("pk"), ai_session__isnull=True, deleted_at__isnull=True
    )
    return qs.annotate(
        last_read=Coalesce(
            Subquery(marker.values("last_read_message_id")[:1]),
            Value(0),
            output_field=IntegerField(),
        ),
        last_message_id=Subquery(room_chat.order_by("-id").values("id")[:1]),
    ).annotate(
        unread=_counted(room_chat.filter(id__gt=OuterRef("last_read")).exclude(sender_id=user_id)),
        mentions_unread=_counted(
            Mention.objects.filter(
                room=OuterRef("pk"),
                user_id=user_id,
                in_room_chat=True,
                message_id__gt=OuterRef("last_read"),
            )
        ),
    )


@dataclass(frozen=True)
class RoomView:
    """A room as one member sees it: its people, what they have not read, its last message
    and who of its members is online (SPEC 9.2, 9.3)."""

    room: ChatRoom
    last_read_message_id: int
    unread_count: int
    mention_count: int
    last_message: Message | None
    online: list[str]

    @property
    def activity_at(self) -> datetime:
        return self.last_message.created_at if self.last_message else self.room.created_at


def room_views(*, user: User, room_ids: Iterable[UUID] | None = None) -> list[RoomView]:
    """The rooms `user` is a member of (those of `room_ids` only, if given), the one with the
    latest activity (its last room-chat message, or its creation) first: three queries whatever
    their number, and one look-up of who is online."""
    qs = member_rooms(user)
    if room_ids is not None:
        qs = qs.filter(pk__in=list(room_ids))
    rooms = list(
        with_people(with_activity(ChatRoom.objects.filter(pk__in=qs.values("pk")), user_id=user.pk))
    )
    last_ids = [r.last_message_id for r in rooms if r.last_message_id]  # type: ignore[attr-defined]
    last = (
        Message.objects.filter(pk__in=last_ids).select_related("sender").in_bulk()
        if last_ids
        else {}
    )
    people = {r.pk: [r.owner, *r.participants.all()] for r in rooms}
    online = sockets.online_among(p.pk for members in people.values() for p in members)
    views = [
        RoomView(
            room=r,
            last_read_message_id=r.last_read,  # type: ignore[attr-defined]
            unread_count=r.unread,  # type: ignore[attr-defined]
            mention_count=r.mentions_unread,  # type: ignore[attr-defined]
            last_message=last.get(r.last_message_id),  # type: ignore[attr-defined]
            online=sorted(p.username for p in people[r.pk] if p.pk in online),
        )
        for r in rooms
    ]
    views.sort(key=lambda v: (v.activity_at, v.room.pk.hex), reverse=True)
    return views


def room_view(*, user: User, room_id: UUID) -> RoomView:
    """One room as `user` sees it; NotFound, as for a missing room, if not a member."""
    found = room_views(user=user, room_ids=[room_id])
    if not found:
        raise NotFound("No such room.")
    return found[0]


@dataclass(frozen=True)
class RoomCounts:
    room_id: UUID
    last_read_message_id: int
    unread_count: int
    mention_count: int
    last_message_id: int


def room_counts_for_user(*, user_id: int, room_id: UUID | None = None) -> list[RoomCounts]:
    """What a `/ws/me/` socket keeps of each of its user's rooms (or of one), in one query."""
    rooms = ChatRoom.objects.filter(member_filter(user_id))
    if room_id is not None:
        rooms = rooms.filter(pk=room_id)
    rows = (
        with_activity(ChatRoom.objects.filter(pk__in=rooms.values("pk")), user_id=user_id)
        .order_by()
        # The annotations of with_activity, which the type checker cannot see.
        .values_list(  # type: ignore[misc]
            "pk", "last_read", "unread", "mentions_unread", "last_message_id"
        )
    )
    return [
        RoomCounts(pk, read, unread, mentions, last or 0)
        for pk, read, unread, mentions, last in rows
    ]


def room_counts_of(*, user_id: int, room_id: UUID) -> RoomCounts | None:
    """One member's counts in one room; None if not a member."""
    found = room_counts_for_user(user_id=user_id, room_id=room_id)
    return found[0] if found else None


def member_ids(*, room_id: UUID) -> list[int]:
    """The owner and the participants of a room."""
    owner = ChatRoom.objects.filter(pk=room_id).values_list("owner_id", flat=True).first()
    if owner is None:
        return []
    through = ChatRoom.participants.through
    others = through.objects.filter(chatroom_id=room_id).values_list("user_id", flat=True)
    return [owner, *others]


def read_marker(*, room_id: UUID, user_id: int) -> int:
    """The last room-chat message the user has read in the room (0: none yet)."""
    found = ReadMarker.objects.filter(room_id=room_id, user_id=user_id)
    return found.values_list("last_read_message_id", flat=True).first() or 0


def room_ids_of(*, user_id: int) -> list[UUID]:
    """The rooms a user is a member of."""
    return list(
        ChatRoom.objects.filter(member_filter(user_id)).values_list("pk", flat=True).distinct()
    )


@dataclass(frozen=True)
class Page:
    messages: list[Message]
    has_more: bool
    # The usernames each message of the page mentions, by message id (SPEC 9.2).
    mentions: dict[int, list[str]] = field(default_factory=dict)
    # The conversation's change number this page is current with: a client passes it back as
    # `changed_after` to learn of the edits and deletions made since.
    change_seq: int = 0
    # With `changed_after`: the messages edited or deleted since then, in change order.
    changes: list[Message] = field(default_factory=list)
    has_more_changes: bool = False


def message_page(
    *,
    conversation: Conversation,
    before: int | None = None,
    after: int | None = None,
    limit: int | None = None,
    changed_after: int | None = None,
    changes_read: int,
) -> Page:
    """One page of a conversation's messages, oldest first (deleted ones as tombstones).

    - neither bound: the latest `limit`; `has_more` says older ones exist;
    - `before`: the `limit` just before that id; `has_more` says older ones exist;
    - `after`: the `limit` just after that id; `has_more` says newer ones exist (a reconnecting
      client fetches what it missed and asks again while `has_more`). Ids are committed in
      order within a conversation (chat.order), so this is every message committed after it;
    - `changed_after`: also the messages whose latest edit or deletion has a change number
      above it, found by index, not by reading the history (at most HISTORY_PAGE_MAX; then
      `has_more_changes`, and `change_seq` is where to go on from).

    `changes_read`: the conversation's change count as the caller read it from its room or
    session row (with its access check) before calling: whatever the rows below miss, a later
    `changed_after` brings.
    """
    size = min(max(limit or settings.HISTORY_PAGE_DEFAULT, 1), settings.HISTORY_PAGE_MAX)
    change_seq = changes_read
    qs = Message.objects.filter(
        room_id=conversation.room_id, ai_session_id=conversation.session_id
    ).select_related("sender", "ai_reply")
    changes: list[Message] = []
    more_changes = False
    if changed_after is not None:
        found = list(
            qs.filter(change_seq__gt=changed_after).order_by("change_seq", "id")[
                : settings.HISTORY_PAGE_MAX + 1
            ]
        )
        if len(found) > settings.HISTORY_PAGE_MAX:
            # Stop before the last change number read: its messages may go on past the cut.
            boundary = found[settings.HISTORY_PAGE_MAX].change_seq or 0
            kept = [m for m in found if (m.change_seq or 0) < boundary]
            if kept:
                found, more_changes, change_seq = kept, True, boundary - 1
        changes = found
        if not more_changes and changes:
            change_seq = max(change_seq, changes[-1].change_seq or 0)
    if before is not None:
        qs = qs.filter(id__lt=before)
    if after is not None:
        rows = list(qs.filter(id__gt=after).order_by("id")[: size + 1])
        page = rows[:size]
    else:
        rows = list(qs.order_by("-id")[: size + 1])
        page = rows[:size]
        page.reverse()
    return Page(
        messages=page,
        has_more=len(rows) > size,
        mentions=mentions_of([*page, *changes]),
        change_seq=change_seq,
        changes=changes,
        has_more_changes=more_changes,
    )


def mentions_of(messages: list[Message]) -> dict[int, list[str]]:
    """The usernames each message mentions, by message id, in one query (none when no message
    has an `@`: a mention is always written as one)."""
    named = [m.pk for m in messages if "@" in m.content]
    if not named:
        return {}
    found: dict[int, list[str]] = {}
    rows = (
        Mention.objects.filter(message_id__in=named)
        .order_by("id")
        .values_list("message_id", "user__username")
    )
    for message_id, username in rows:
        found.setdefault(message_id, []).append(username)
    return found


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
