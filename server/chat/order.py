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


def message_append(
    *, conversation: Conversation, sender: User, content: str, **fields: Any
) -> Stored:
    """Store a message whose sender the caller vouches for (the assistant's reply), in the
    conversation's order, inside the caller's transaction: the lock is held until it commits."""
    model = row_model(conversation.kind)
    pk = row_pk(conversation)
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            allot = (
                f"UPDATE {table} SET tail_prev_id = tail_id, "  # noqa: S608 - names, not data
                f"tail_id = nextval({id_sequence()}::regclass) WHERE id = %s "
                "RETURNING tail_id, tail_prev_id"
            )
            row = fetch_one(allot, [model._meta.pk.get_db_prep_value(pk, connection)])
            if row is None:
                raise ObjectDoesNotExist(f"No conversation {conversation}.")
            message = Message.objects.create(
                id=row[0],
                room_id=conversation.room_id,
                ai_session_id=conversation.session_id,
                sender=sender,
                content=content,
                **fields,
            )
            previous = row[1]
        else:
            # SQLite has one writer at a time: the insert's lock orders the conversation.
            message = Message.objects.create(
                room_id=conversation.room_id,
                ai_session_id=conversation.session_id,
                sender=sender,
                content=content,
                **fields,
            )
            previous = tail_swap(model, pk, message.pk)
        owner_id = ChatRoom.objects.values_list("owner_id", flat=True).get(pk=conversation.room_id)
    return Stored(message, previous or 0, owner_id)


def tail_swap(model: type[models.Model], pk: Any, message_id: int) -> int | None:
    """Make `message_id` the conversation's last message; the one it follows (SQLite)."""
    rows = model._default_manager.filter(pk=pk)
    previous: int | None = rows.values_list("tail_id", flat=True).first()
    rows.update(tail_prev_id=models.F("tail_id"), tail_id=message_id)
    return previous


def change_next(*, conversation: Conversation) -> int:
    """Draw the conversation's next change number, taking its lock for the caller's
    transaction (so changes commit in the order of their numbers)."""
    model = row_model(conversation.kind)
    rows = model._default_manager.filter(pk=row_pk(conversation))
    rows.update(changes=models.F("changes") + 1)
    changes: int = rows.values_list("changes", flat=True).get()
    return changes


def change_count(*, conversation: Conversation) -> int:
    """How many edits and deletions the conversation has had so far."""
    model = row_model(conversation.kind)
    found = model._default_manager.filter(pk=row_pk(conversation)).values_list("changes", flat=True)
    return found.first() or 0
