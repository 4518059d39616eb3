"""The order of a conversation: its messages are stored one after the other, and its edits
and deletions are counted, under one row lock per conversation.

A conversation's row is its room (room chat) or its AI session. Storing a message takes that
row's lock and only then allots the message's id, and the lock is held until the message is
committed: so within a conversation ids are allotted and committed in the same order, and a
client that asks for what came `after=<id>` gets every message committed after that one, and
never one committed later with a lower id. The row also keeps the ids of the conversation's
last two messages (`tail_id`, `tail_prev_id`): each `chat_message` frame says which message
came before it (`previous_id`), so a client can tell a message it missed from one that merely
arrived out of order from another server process. Edits and deletions take the same lock to
draw the next value of the row's `changes` counter, stamped on what they changed: a client that
saw changes up to n asks for `changed_after=n`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import connection, models, transaction

from accounts.models import User
from chat.conversations import Conversation, Kind
from chat.models import ChatRoom, Message
from core.db import fetch_one


@dataclass(frozen=True)
class Stored:
    """A message just stored, with what its frames say beside it."""

    message: Message
    # The id of the message stored just before it in its conversation (0: none).
    previous_id: int
    # The owner of the conversation's room (who may delete any message in it).
    owner_id: int


def row_model(kind: Kind) -> type[models.Model]:
    """The model whose rows stand for conversations of this kind (an AI session's, without
    importing the layer above: the model `Message.ai_session` points to)."""
    if kind == "room":
        return ChatRoom
    model: type[models.Model] = Message._meta.get_field("ai_session").related_model  # type: ignore[assignment]
    return model


def row_pk(conversation: Conversation) -> Any:
    return conversation.room_id if conversation.session_id is None else conversation.session_id


_sequence: list[str] = []


def id_sequence() -> str:
    """The PostgreSQL sequence behind message ids, as an SQL literal (looked up once)."""
    if not _sequence:
        table = Message._meta.db_table
        row = fetch_one("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        if row is None or row[0] is None:  # pragma: no cover - the migration made it
            raise RuntimeError(f"{table}.id has no sequence.")
        _sequence.append("'" + str(row[0]).replace("'", "''") + "'")
    return _sequence[0]


def tail_sql(kind: Kind, *, new_id: str, condition: str = "") -> str:
    """The UPDATE that makes message `new_id` (an SQL expression) the last of a conversation of
    this kind: `WHERE <its row> = %s`, narrowed by `condition`, RETURNING `tail_id`,
    `tail_prev_id` (the message before it) and `owner_id` (the room's owner). One statement on
    PostgreSQL and SQLite alike: a row's new `tail_prev_id` is its old `tail_id`. (Only names
    are put into the SQL, never data.)"""
    quote = connection.ops.quote_name
    table = quote(row_model(kind)._meta.db_table)
    if kind == "room":
        owner = f"{table}.owner_id"
    else:
        rooms = quote(ChatRoom._meta.db_table)
        owner = f"(SELECT r.owner_id FROM {rooms} AS r WHERE r.id = {table}.room_id)"  # noqa: S608
    return (
        f"UPDATE {table} SET tail_prev_id = {table}.tail_id, tail_id = {new_id} "  # noqa: S608
        f"WHERE {table}.id = %s{condition} "
        f"RETURNING {table}.tail_id, {table}.tail_prev_id, {owner} AS owner_id"
    )


def tail_follow(*, conversation: Conversation, message_id: int) -> tuple[int, int]:
    """(SQLite, whose one writer at a time orders a conversation) Make the message just
    inserted the conversation's last: the id of the one before it (0: none), the room's owner."""
    pk = row_model(conversation.kind)._meta.pk.get_db_prep_value(row_pk(conversation), connection)
    row = fetch_one(tail_sql(conversation.kind, new_id="%s"), [message_id, pk])
    if row is None:
        raise ObjectDoesNotExist(f"No conversation {conversation}.")
    return row[1] or 0, row[2]


def message_append(
    *, conversation: Conversation, sender: User, content: str, **fields: Any
) -> Stored:
    """Store a message whose sender the caller vouches for (the assistant's reply), in the
    conversation's order, inside the caller's transaction: the lock is held until it commits."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            model = row_model(conversation.kind)
            pk = model._meta.pk.get_db_prep_value(row_pk(conversation), connection)
            allot = tail_sql(conversation.kind, new_id=f"nextval({id_sequence()}::regclass)")
            row = fetch_one(allot, [pk])
            if row is None:
                raise ObjectDoesNotExist(f"No conversation {conversation}.")
            message_id, previous, owner_id = row
        else:
            message_id = None
        message = Message.objects.create(
            id=message_id,
            room_id=conversation.room_id,
            ai_session_id=conversation.session_id,
            sender=sender,
            content=content,
            **fields,
        )
        if message_id is None:
            previous, owner_id = tail_follow(conversation=conversation, message_id=message.pk)
    return Stored(message, previous or 0, owner_id)


def change_next(*, conversation: Conversation) -> int:
    """Draw the conversation's next change number, taking its lock for the caller's
    transaction (so changes commit in the order of their numbers)."""
    model = row_model(conversation.kind)
    rows = model._default_manager.filter(pk=row_pk(conversation))
    rows.update(changes=models.F("changes") + 1)
    changes: int = rows.values_list("changes", flat=True).get()
    return changes
