"""The frames of room chat and AI sessions about messages (SPEC 4.2, 9.4), and the message as
the API and the sockets show it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from django.conf import settings
from pydantic import BaseModel, Field

from chat.access import can_delete_message, can_edit_message
from chat.models import Message
from core.events import frame_event


def _null(value: object) -> bool:
    return value is None


class ReplyUsageOut(BaseModel):
    """What the provider call behind one reply used (SPEC 10.2, 11.1)."""

    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: str | None = Field(description="USD, 6 decimals; null for a model with no price.")
    estimated: bool = Field(description="True when the provider reported no usage.")


class MessageOut(BaseModel):
    """A message as the API and the socket show it. The fields after `is_ai` are left out of
    frames and history where they do not apply. A deleted message keeps its place as a
    tombstone: `deleted` true and `message` empty."""

    message_id: int
    message: str
    username: str
    timestamp: str
    is_self: bool
    is_ai: bool
    # The members the message names with @username (SPEC 9.2), in the order it names them.
    mentions: list[str] = []
    edited_at: str | None = None
    deleted: bool = False
    # An AI reply whose question was edited after it was written.
    reply_to_edited: bool = False
    # What the viewer may do with it (chat.access), so no client re-derives the rules.
    can_edit: bool = False
    can_delete: bool = False
    note: dict[str, Any] | None = Field(
        default=None,
        exclude_if=_null,
        description="Set on a note about the conversation (`message` words it in English): "
        '`{"kind": "session_settings", "changes": [{"field", "value"}]}`.',
    )
    # The assistant's replies (SPEC 10.2).
    reply_to: int | None = Field(
        default=None, exclude_if=_null, description="The message this AI reply answers."
    )
    model: str | None = Field(
        default=None, exclude_if=_null, description="The model that wrote this AI reply."
    )
    finish_reason: str | None = Field(
        default=None,
        exclude_if=_null,
        description="How this AI reply ended: stop, length, stopped, error, interrupted.",
    )
    version: int | None = Field(
        default=None, exclude_if=_null, description="Which answer to its question this is (1...)."
    )
    versions: int | None = Field(
        default=None, exclude_if=_null, description="How many answers its question has."
    )
    usage: ReplyUsageOut | None = Field(default=None, exclude_if=_null)


# What other apps add to the messages they know more about (the assistant's replies: the
# question each answers, its version, its usage): a function from messages to the extra
# fields of each, by message id. Installed by those apps at start-up (AppConfig.ready).
MessageDetails = Callable[[Sequence[Message]], Mapping[int, Mapping[str, Any]]]
_detail_sources: list[MessageDetails] = []


def add_message_details(source: MessageDetails) -> None:
    if source not in _detail_sources:
        _detail_sources.append(source)


def messages_out(
    messages: Sequence[Message],
    *,
    viewer_id: int | None,
    mentions: Mapping[int, list[str]] | None = None,
    owner_id: int | None = None,
) -> list[MessageOut]:
    """Messages as history shows them (with the members each mentions, by message id; the
    room's owner may delete any), each with what the other apps add to it."""
    extra: dict[int, dict[str, Any]] = {}
    for source in _detail_sources:
        for message_id, details in source(messages).items():
            extra.setdefault(message_id, {}).update(details)
    out = []
    for m in messages:
        item = message_out(
            m, viewer_id=viewer_id, mentions=(mentions or {}).get(m.pk), owner_id=owner_id
        )
        fields = extra.get(m.pk)
        out.append(MessageOut(**{**item.model_dump(), **fields}) if fields else item)
    return out


class ChatMessageFrame(MessageOut):
    type: Literal["chat_message"] = "chat_message"
    client_id: str | None = None
    # The id of the message stored just before this one in the conversation (0: none), when
    # known: a client whose history ends there can append this one and be sure it missed none.
    previous_id: int | None = None


class RoomSettingsFrame(BaseModel):
    """To everyone on a room's socket when its owner changes its settings."""

    type: Literal["room_settings"] = "room_settings"
    room_id: str
    ai_mentions: bool
    username: str


class MessageEditedFrame(BaseModel):
    type: Literal["message_edited"] = "message_edited"
    message_id: int
    message: str
    edited_at: str
    # The conversation's change number of this edit (`changed_after=` in history).
    change_seq: int
    # The assistant's replies to this message, which now carry `reply_to_edited`.
    replies: list[int] = []
    # The members the new text mentions, as `mentions` of history.
    mentions: list[str] = []


class MessageDeletedFrame(BaseModel):
    type: Literal["message_deleted"] = "message_deleted"
    message_id: int
    change_seq: int


def message_out(
    message: Message,
    *,
    viewer_id: int | None,
    mentions: list[str] | None = None,
    owner_id: int | None = None,
) -> MessageOut:
    deleted = message.deleted_at is not None
    return MessageOut(
        message_id=message.pk,
        message="" if deleted else message.content,
        username=message.sender.username,
        timestamp=message.created_at.isoformat(),
        is_self=message.sender_id == viewer_id,
        is_ai=message.sender.username == settings.AI_USERNAME,
        note=message.note,
        mentions=mentions or [],
        edited_at=message.edited_at.isoformat() if message.edited_at and not deleted else None,
        deleted=deleted,
        reply_to_edited=message.reply_to_edited,
        can_edit=can_edit_message(user_id=viewer_id, message=message),
        can_delete=can_delete_message(user_id=viewer_id, message=message, owner_id=owner_id),
    )


def chat_message_frames(
    message: Message, *, mentions: list[str] | None = None, previous_id: int | None = None
) -> tuple[dict[str, object], dict[str, object]]:
    """The frame for everyone else, and the one for the sender's own sockets (with client_id).
    Built once and varied as dicts: this runs for every message said."""
    base = message_out(message, viewer_id=None, mentions=mentions).model_dump()
    others = ChatMessageFrame(**base, previous_id=previous_id).model_dump(exclude_none=True)
    mine = {
        **others,
        "is_self": True,
        "can_edit": can_edit_message(user_id=message.sender_id, message=message),
        "can_delete": can_delete_message(user_id=message.sender_id, message=message, owner_id=None),
    }
    if message.client_id is not None:
        mine["client_id"] = message.client_id
    return _type_first(others), _type_first(mine)


def chat_message_event(
    group: str,
    message: Message,
    *,
    previous_id: int,
    owner_id: int,
    mentions: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The layer event of a new message: one frame for everyone, one for the sender's sockets
    and, when someone else owns the room, one for the owner's (who may delete it)."""
    others, mine = chat_message_frames(message, mentions=mentions, previous_id=previous_id)
    if extra:
        others, mine = {**others, **extra}, {**mine, **extra}
    user_frames = None
    if owner_id != message.sender_id:
        user_frames = [(owner_id, {**others, "can_delete": True})]
    return frame_event(
        group, others, sender_id=message.sender_id, self_frame=mine, user_frames=user_frames
    )


def _type_first(frame: dict[str, object]) -> dict[str, object]:
    return {"type": frame.pop("type"), **frame}
