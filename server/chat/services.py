"""State changes of rooms, and the one statement that stores a person's message.

Real-time events leave from here, after commit (core.events.publish_on_commit). Posting a
message to a conversation, which may also ask the assistant for a reply, is
`llm.services.message_post`; it stores the message through `message_insert` below.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.selectors import user_get_by_username, user_is_assistant
from chat import workspace
from chat.access import (
    access_room,
    can_manage_members,
    can_manage_room,
    can_remove,
    is_member,
    member_filter,
)
from chat.conversations import Conversation, Kind
from chat.events import RoomSettingsFrame
from chat.models import ChatRoom, Mention, Message, ReadMarker
from chat.order import Stored, id_sequence, row_model, row_pk, tail_follow, tail_sql
from chat.rooms import room_json
from chat.selectors import room_counts_of, room_view
from core import closecodes
from core.db import fetch_one
from core.errors import (
    EmptyMessage,
    Forbidden,
    MessageTooLong,
    NotFound,
    ValidationFailed,
    text_field,
)
from core.events import control_event, frame_event, publish_on_commit
from core.groups import room_group, session_group, user_group

logger = logging.getLogger(__name__)

ROOM_NAME_MAX = 100
CLIENT_ID_MAX = 64


def _room_name(name: str) -> str:
    return text_field(name, field="name", at_most=ROOM_NAME_MAX, empty="must not be empty")


@transaction.atomic
def room_create(*, owner: User, name: str) -> ChatRoom:
    room = ChatRoom.objects.create(owner=owner, name=_room_name(name))
    workspace.announce_room_added(
        user_id=owner.pk, room=room_json(room_view(user=owner, room_id=room.pk), viewer_id=owner.pk)
    )
    logger.info("Room %s created by user %s", room.pk, owner.pk)
    return room


@transaction.atomic
def room_update(
    *, room_id: UUID, actor: User, name: str | None = None, ai_mentions: bool | None = None
) -> ChatRoom:
    """The owner renames the room and/or turns the assistant's answers to `@AI_Assistant` in
    its chat on or off (SPEC 9.2, 10.3). What is left None stays. Every member's `/ws/me/`
    gets `room_updated`; a change of `ai_mentions` also reaches the room's socket as
    `room_settings`."""
    room = access_room(room_id=room_id, user=actor)
    if not can_manage_room(user=actor, room=room):
        raise Forbidden("Only the room's owner can change the room.")
    fields = []
    if name is not None:
        room.name = _room_name(name)
        fields.append("name")
    if ai_mentions is not None and ai_mentions != room.ai_mentions:
        room.ai_mentions = ai_mentions
        fields.append("ai_mentions")
        frame = RoomSettingsFrame(
            room_id=str(room.pk), ai_mentions=ai_mentions, username=actor.username
        )
        publish_on_commit(frame_event(Conversation(room_id=room.pk).group, frame.model_dump()))
    if not fields:
        return room
    room.save(update_fields=fields)
    workspace.announce_room_updated(
        room=room_json(room_view(user=actor, room_id=room.pk), viewer_id=actor.pk)
    )
    logger.info("Room %s: %s changed by user %s", room.pk, ", ".join(fields), actor.pk)
    return room


@transaction.atomic
def room_delete(*, room_id: UUID, actor: User) -> None:
    """The owner deletes the room with its chat and its AI sessions (SPEC 9.2): a reply being
    written stops, every socket on the room and its sessions is closed with 4404, every
    member's `/ws/me/` gets `room_removed` (`deleted`). What the assistant's calls cost stays
    recorded (llm.LlmUsage keeps its rows, without the room)."""
    room = access_room(room_id=room_id, user=actor)
    if not can_manage_room(user=actor, room=room):
        raise Forbidden("Only the room's owner can delete it.")
    # A room's sessions are the assistant's (llm), found here through the relation only.
    groups = [room_group(room.pk)] + [
        session_group(pk) for pk in room.ai_sessions.values_list("pk", flat=True)
    ]
    workspace.announce_room_deleted(room_id=room.pk)
    for group in groups:
        publish_on_commit(control_event(group, "stop"))
        publish_on_commit(control_event(group, "close", code=closecodes.NOT_FOUND))
    room.delete()
    logger.info("Room %s deleted by user %s", room_id, actor.pk)


@transaction.atomic
def room_add_participant(*, room_id: UUID, actor: User, username: str) -> ChatRoom:
    room = access_room(room_id=room_id, user=actor)
    if not can_manage_members(user=actor, room=room):
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
    if room.participants.filter(pk=user.pk).exists():
        return room
    room.participants.add(user)
    # What was said before someone joined is not news to them.
    last = (
        Message.objects.filter(room=room, ai_session__isnull=True)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    ReadMarker.objects.update_or_create(
        user=user, room=room, defaults={"last_read_message_id": last or 0}
    )
    workspace.announce_room_added(
        user_id=user.pk, room=room_json(room_view(user=user, room_id=room.pk), viewer_id=user.pk)
    )
    workspace.announce_member(
        kind="member_added", room_id=room.pk, user_id=user.pk, username=user.username
    )
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
    if not can_remove(actor=actor, room=room, target=target):
        raise Forbidden("Only the room's owner can remove other participants.")
    room.participants.remove(target)
    ReadMarker.objects.filter(user=target, room=room).delete()
    publish_on_commit(
        control_event(
            user_group(target.pk), "close", code=closecodes.FORBIDDEN, room_id=str(room.pk)
        )
    )
    workspace.announce_room_removed(
        user_id=target.pk, room_id=room.pk, reason="left" if actor.pk == target.pk else "removed"
    )
    workspace.announce_member(
        kind="member_removed", room_id=room.pk, user_id=target.pk, username=target.username
    )
    logger.info("User %s left room %s (by user %s)", target.pk, room.pk, actor.pk)
    if actor.pk == target.pk:
        return room
    return access_room(room_id=room_id, user=actor)


@dataclass(frozen=True)
class ReadState:
    room_id: UUID
    last_read_message_id: int
    unread_count: int
    mention_count: int


@transaction.atomic
def room_mark_read(*, room_id: UUID, user: User, message_id: int) -> ReadState:
    """Move the user's read marker of the room's chat forward to `message_id` (never back, and
    never past the room's last message). When it moved, the user's other tabs and devices get
    `read` on `/ws/me/`."""
    if not is_member(user=user, room_id=room_id):
        raise NotFound("No such room.")
    last = (
        Message.objects.filter(room_id=room_id, ai_session__isnull=True)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    ) or 0
    target = min(message_id, last)
    ReadMarker.objects.get_or_create(user=user, room_id=room_id)
    moved = ReadMarker.objects.filter(
        user=user, room_id=room_id, last_read_message_id__lt=target
    ).update(last_read_message_id=target)
    counts = room_counts_of(user_id=user.pk, room_id=room_id)
    if counts is None:  # left the room meanwhile
        raise NotFound("No such room.")
    state = ReadState(
        room_id, counts.last_read_message_id, counts.unread_count, counts.mention_count
    )
    if moved:
        workspace.announce_read(
            user_id=user.pk,
            room_id=room_id,
            last_read_message_id=state.last_read_message_id,
            unread_count=state.unread_count,
            mention_count=state.mention_count,
        )
    return state


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


def message_insert(
    *, conversation: Conversation, sender: User, content: str, client_id: str | None
) -> Stored | None:
    """Store a person's message if they are a member of the conversation's room, in one
    statement, so the check and the insert are atomic without a transaction around them; None
    if not a member. Raises IntegrityError for a `client_id` the sender already used (inside a
    caller's transaction under a savepoint, so the transaction stays usable).

    The message takes its place in the conversation's order (chat.order): on PostgreSQL the
    statement first updates the conversation's row, which locks it until the message is
    committed, and only then draws the message's id, so ids commit in order; the row gives back
    the id of the message before it and the room's owner, for the frames.

    The busiest write of the product, so it is one round trip of SQL built once per process
    (`_insert_sql`) instead of an ORM existence check and an ORM insert inside BEGIN/COMMIT
    (four round trips, and the ORM's query building was most of a process's CPU per message:
    BENCHMARKS.md). It writes every column of the model from a `Message` built as the ORM would
    build it, and takes the membership rule from `chat.access.member_filter`, so neither a new
    field nor a change of the rule can be missed here (tests/test_services.py compares its rows
    with the ORM's).
    """
    message = Message(
        room_id=conversation.room_id,
        ai_session_id=conversation.session_id,
        sender=sender,
        content=content,
        client_id=client_id,
        created_at=timezone.now(),
    )
    sql, template = _insert_sql(conversation.kind)
    values = [
        field.get_db_prep_save(getattr(message, field.attname), connection) for field in _columns()
    ]
    room = Message._meta.get_field("room").target_field.get_db_prep_value(
        conversation.room_id, connection
    )
    model = row_model(conversation.kind)
    slots = {
        _ROOM: room,
        _USER: sender.pk,
        _ROW: model._meta.pk.get_db_prep_value(row_pk(conversation), connection),
    }
    params: list[Any] = []
    for slot in template:
        if slot is _VALUES:
            params += values
        else:
            params.append(slots.get(slot, slot) if isinstance(slot, _Slot) else slot)
    if connection.vendor != "postgresql":
        with transaction.atomic():
            row = fetch_one(sql, params)
            if row is None:
                return None
            row = (row[0], *tail_follow(conversation=conversation, message_id=row[0]))
    elif connection.in_atomic_block:
        with transaction.atomic():
            row = fetch_one(sql, params)
    else:
        row = fetch_one(sql, params)
    if row is None:
        return None
    message.pk = row[0]
    message._state.adding = False
    message._state.db = connection.alias
    return Stored(message, previous_id=row[1] or 0, owner_id=row[2])


def mentions_record(*, message: Message, keys: list[str]) -> list[tuple[int, str]]:
    """Record the members that `message` mentions (their username keys, in the order the text
    names them, from chat.mentions.mentioned_keys) and return their ids and usernames in that
    order.
    Names that are not members of the message's room, and the sender's own, are not mentions.
    Runs inside the transaction that stores the message, so a mention is never recorded
    without its message or missed with it."""
    if not keys:
        return []
    through = ChatRoom.participants.through
    members = (
        User.objects.filter(username_key__in=keys)
        .filter(
            Q(pk__in=ChatRoom.objects.filter(pk=message.room_id).values("owner_id"))
            | Q(pk__in=through.objects.filter(chatroom_id=message.room_id).values("user_id"))
        )
        .exclude(pk=message.sender_id)
        .values_list("pk", "username", "username_key")
    )
    found = {key: (pk, name) for pk, name, key in members}
    named = [found[key] for key in keys if key in found]
    Mention.objects.bulk_create(
        [
            Mention(
                message=message,
                user_id=pk,
                room_id=message.room_id,
                in_room_chat=message.ai_session_id is None,
            )
            for pk, _ in named
        ]
    )
    return named


def _columns() -> list[Any]:
    return [f for f in Message._meta.concrete_fields if not f.primary_key]


class _Slot:
    """A place in a statement's parameters filled for each message."""


_ROOM, _USER, _ROW, _VALUES = _Slot(), _Slot(), _Slot(), _Slot()
# A room id and a user id that no row has: the membership query is compiled once with them,
# and their places in its parameters become the slots of each message's room and sender.
_ROOM_MARK = UUID("00000000-0000-4000-8000-00000000c4a7")
_USER_MARK = 2**62 - 11
_compiled: dict[tuple[str, str], tuple[str, list[Any]]] = {}
_compile_lock = threading.Lock()


def _compiled_exists(queryset: Any) -> tuple[str, list[Any]]:
    """`EXISTS (<queryset>)` as SQL, its parameters' room and user marks turned into slots."""
    sql, params = (
        queryset.order_by().values("pk").query.get_compiler(connection=connection).as_sql()
    )
    room_marks = {_ROOM_MARK, ChatRoom._meta.pk.get_db_prep_value(_ROOM_MARK, connection)}
    template = [_ROOM if p in room_marks else _USER if p == _USER_MARK else p for p in params]
    return f"EXISTS ({sql})", template


def _insert_sql(kind: Kind) -> tuple[str, list[Any]]:
    """The statement that stores a person's message in a conversation of this kind, for this
    database vendor, with the template of its parameters.

    It stores the message only where the sender is a member of the room and the sender's
    account is active: both conditions are the ORM's own queries, compiled (the membership
    rule of `chat.access.member_filter`, and `is_active`, so a deactivated account whose socket
    is still open cannot say anything in the moment before the socket closes).

    PostgreSQL: WITH tail AS (UPDATE <the conversation's row> SET its tail to a new id WHERE
    <both> RETURNING ...) INSERT ... SELECT <the new id, every column> FROM tail RETURNING id,
    the previous tail, the room's owner. Elsewhere: INSERT ... SELECT <every column> WHERE
    <both> RETURNING id, the tail being kept by the caller."""
    vendor = connection.vendor
    cached = _compiled.get((vendor, kind))
    if cached is not None:
        return cached
    with _compile_lock:
        member, member_template = _compiled_exists(
            ChatRoom.objects.filter(member_filter(_USER_MARK), pk=_ROOM_MARK)
        )
        if _ROOM not in member_template or _USER not in member_template:  # pragma: no cover
            raise RuntimeError("The membership rule no longer names the room and the user.")
        active, active_template = _compiled_exists(
            User.objects.filter(pk=_USER_MARK, is_active=True)
        )
        allowed, allowed_template = f"{member} AND {active}", member_template + active_template
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in _columns())
        slots = ", ".join(["%s"] * len(_columns()))
        table = quote(Message._meta.db_table)
        if vendor != "postgresql":
            sql = (
                f"INSERT INTO {table} ({columns}) "
                f"SELECT {slots} WHERE {allowed} RETURNING {quote('id')}"
            )
            template: list[Any] = [_VALUES, *allowed_template]
        else:
            if kind == "room":
                condition = f" AND {allowed}"
                template = [_ROW, *allowed_template, _VALUES]
            else:
                # The session must be of the room whose membership is checked.
                condition = f" AND room_id = %s AND {allowed}"
                template = [_ROW, _ROOM, *allowed_template, _VALUES]
            allot = tail_sql(
                kind, new_id=f"nextval({id_sequence()}::regclass)", condition=condition
            )
            sql = (
                f"WITH tail AS ({allot}) "  # noqa: S608 - names, not data
                f"INSERT INTO {table} ({quote('id')}, {columns}) "
                f"SELECT tail.tail_id, {slots} FROM tail "
                f"RETURNING {quote('id')}, (SELECT tail_prev_id FROM tail), "
                "(SELECT owner_id FROM tail)"
            )
        _compiled[(vendor, kind)] = (sql, template)
    return sql, template
