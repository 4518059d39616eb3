"""The `chat_message` frame (SPEC 4.2) and the message as the API and the sockets show it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from django.conf import settings
from pydantic import BaseModel, Field

from chat.models import Message


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
    frames and history where they do not apply."""

    message_id: int
    message: str
    username: str
    timestamp: str
    is_self: bool
    is_ai: bool
    # The members the message names with @username (SPEC 9.2), in the order it names them.
    mentions: list[str] = []
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
) -> list[MessageOut]:
    """Messages as history shows them (with the members each mentions, by message id), each
    with what the other apps add to it."""
    extra: dict[int, dict[str, Any]] = {}
    for source in _detail_sources:
        for message_id, details in source(messages).items():
            extra.setdefault(message_id, {}).update(details)
    out = []
    for m in messages:
        item = message_out(m, viewer_id=viewer_id, mentions=(mentions or {}).get(m.pk))
        fields = extra.get(m.pk)
        out.append(MessageOut(**{**item.model_dump(), **fields}) if fields else item)
    return out


class ChatMessageFrame(MessageOut):
    type: Literal["chat_message"] = "chat_message"
    client_id: str | None = None


class RoomSettingsFrame(BaseModel):
    """To everyone on a room's socket when its owner changes its settings."""

    type: Literal["room_settings"] = "room_settings"
    room_id: str
    ai_mentions: bool
    username: str


def message_out(
    message: Message, *, viewer_id: int | None, mentions: list[str] | None = None
) -> MessageOut:
    return MessageOut(
        message_id=message.pk,
        message=message.content,
        username=message.sender.username,
        timestamp=message.created_at.isoformat(),
        is_self=message.sender_id == viewer_id,
        is_ai=message.sender.username == settings.AI_USERNAME,
        note=message.note,
        mentions=mentions or [],
    )


def chat_message_frames(
    message: Message, *, mentions: list[str] | None = None
) -> tuple[dict[str, object], dict[str, object]]:
    """The frame for everyone else, and the one for the sender's own sockets (with client_id)."""
    base = message_out(message, viewer_id=None, mentions=mentions).model_dump()
    others = ChatMessageFrame(**base).model_dump(exclude_none=True)
    mine = ChatMessageFrame(**{**base, "is_self": True}, client_id=message.client_id).model_dump(
        exclude_none=True
    )
    return _type_first(others), _type_first(mine)


def _type_first(frame: dict[str, object]) -> dict[str, object]:
    return {"type": frame.pop("type"), **frame}
