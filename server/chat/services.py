"""State changes of rooms and messages. Real-time events leave from here, after commit."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import user_get_by_username, user_is_assistant
from chat.events import chat_message_frames
from chat.models import ChatRoom, Message
from chat.selectors import access_room, message_by_client_id
from core import ratelimit
from core.db import db_async
from core.errors import EmptyMessage, Forbidden, MessageTooLong, NotFound, ValidationFailed
from core.events import apublish, control_event, frame_event, publish_on_commit
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
    stored one and broadcasts nothing. Membership is checked in the same statement.
    """
    message, created, event = _message_save(
        room_id=room_id, sender=sender, content=content, client_id=client_id
    )
    if event is not None:
        publish_on_commit(event)
    return message, created


async def amessage_post(
    *,
    room_id: UUID,
    sender: User,
    content: str,
    client_id: str | None,
    rate: str | None = None,
) -> tuple[Message, bool]:
    """`message_post` for the socket, which runs on the event loop: a retry with a known
    `client_id` is answered from the database without counting against `rate`; a new message
    is counted against the sender's `rate` (RateLimited when over it), saved, and broadcast
    from the loop.

    The lookup, the count and the insert are one trip to a database thread (each trip waits
    for the loop twice, which under load cost more than the queries). The broadcast is sent
    from the loop: from a database thread, `publish_on_commit` would hop back to the loop and
    hold the thread until the loop got round to it.
    """
    message, created, event = await db_async(_message_post_counted)(
        room_id=room_id, sender=sender, content=content, client_id=client_id, rate=rate
    )
    if event is not None:
        try:
            await apublish(event)
        except Exception:
            # Saved is saved; members who missed the broadcast catch up from history.
            logger.exception("Could not publish message %s", message.pk)
    return message, created


def _message_post_counted(
    *, room_id: UUID, sender: User, content: str, client_id: str | None, rate: str | None
) -> tuple[Message, bool, dict[str, Any] | None]:
    if client_id is not None:
        existing = _message_by_known_client_id(sender=sender, client_id=client_id, room_id=room_id)
        if existing is not None:
            return existing, False, None
    if rate is not None:
        ratelimit.hit("chat", str(sender.pk), rate)
    return _message_save(room_id=room_id, sender=sender, content=content, client_id=client_id)


def _message_by_known_client_id(*, sender: User, client_id: str, room_id: UUID) -> Message | None:
    if not _client_id_is_known(sender=sender, client_id=client_id):
        return None
    return message_by_client_id(sender=sender, client_id=client_id, room_id=room_id)


def _message_save(
    *, room_id: UUID, sender: User, content: str, client_id: str | None
) -> tuple[Message, bool, dict[str, Any] | None]:
    """The message, whether it is new, and (if new) its broadcast, to send once committed."""
    try:
        if connection.in_atomic_block:
            # Inside a caller's transaction a failed statement aborts it (on PostgreSQL): a
            # savepoint keeps it usable for the duplicate's lookup below.
            with transaction.atomic():
                message = _message_insert_if_member(
                    room_id=room_id, sender=sender, content=content, client_id=client_id
                )
        else:
            message = _message_insert_if_member(
                room_id=room_id, sender=sender, content=content, client_id=client_id
            )
    except IntegrityError:
        if client_id is None:
            raise
        existing = message_by_client_id(sender=sender, client_id=client_id, room_id=room_id)
        if existing is None:
            raise
        return existing, False, None
    if message is None:
        raise NotFound("No such room.")
    others, mine = chat_message_frames(message)
    event = frame_event(room_group(room_id), others, sender_id=sender.pk, self_frame=mine)
    transaction.on_commit(partial(metrics.record_message, "room"))
    return message, True, event


def _fetch_one(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    """Run one statement of the room-chat write path and return its first row.

    On PostgreSQL through a psycopg cursor that sends the parameters apart from the SQL:
    Django's cursors quote each value into the SQL text in Python, a visible share of the
    write path's CPU (room chat measured ~10 % more messages per second without it). Django
    leaves psycopg's prepared statements off, for connection poolers; OPTIONS'
    prepare_threshold turns them on for these statements too. Errors are Django's, as from its
    own cursors. (OPTIONS server_side_binding would bind every query on the server: the suite
    passes with it, but room chat measured no faster, 437-588 against 513-607 msg/s in
    alternating quick runs, so the change stays on the path that showed the cost.)
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row: tuple[Any, ...] | None = cursor.fetchone()
            return row
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _client_id_is_known(*, sender: User, client_id: str) -> bool:
    """Whether the sender already stored a message with this id: the check every new message
    pays (clients send one with each), so a plain indexed query, not the ORM's."""
    table = connection.ops.quote_name(Message._meta.db_table)
    sql = f"SELECT 1 FROM {table} WHERE sender_id = %s AND client_id = %s"  # noqa: S608
    return _fetch_one(sql, [sender.pk, client_id]) is not None


def _message_insert_if_member(
    *, room_id: UUID, sender: User, content: str, client_id: str | None
) -> Message | None:
    """Insert the message if `sender` is a member of the room, in one statement (so the check
    and the insert are atomic without a transaction around them); None if not a member.

    The busiest write of the product, so it is one round trip of plain SQL instead of an
    ORM existence check and an ORM insert inside BEGIN/COMMIT (four round trips, and the ORM's
    query building was most of a process's CPU per message).
    """
    now = timezone.now()
    room_field = Message._meta.get_field("room").target_field
    room_value = room_field.get_db_prep_value(room_id, connection)
    created = Message._meta.get_field("created_at").get_db_prep_value(now, connection)
    table = connection.ops.quote_name(Message._meta.db_table)
    rooms = connection.ops.quote_name(ChatRoom._meta.db_table)
    members = connection.ops.quote_name(ChatRoom.participants.through._meta.db_table)
    sql = (
        f"INSERT INTO {table} (room_id, sender_id, content, created_at, client_id) "  # noqa: S608
        f"SELECT %s, %s, %s, %s, %s WHERE EXISTS "
        f"(SELECT 1 FROM {rooms} WHERE id = %s AND owner_id = %s) OR EXISTS "
        f"(SELECT 1 FROM {members} WHERE chatroom_id = %s AND user_id = %s) RETURNING id"
    )
    params = [room_value, sender.pk, content, created, client_id]
    params += [room_value, sender.pk, room_value, sender.pk]
    row = _fetch_one(sql, params)
    if row is None:
        return None
    message = Message(
        id=row[0], room_id=room_id, sender=sender, content=content, created_at=now,
        client_id=client_id,
    )  # fmt: skip
    message._state.adding = False
    message._state.db = connection.alias
    return message
