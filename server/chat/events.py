"""The `chat_message` frame (SPEC 4.2) and the message as the API and the sockets show it."""

from __future__ import annotations

from typing import Literal

from django.conf import settings
from pydantic import BaseModel

from chat.models import Message


class MessageOut(BaseModel):
    """A message as the API and the socket show it."""

    message_id: int
    message: str
    username: str
    timestamp: str
    is_self: bool
    is_ai: bool
    # The members the message names with @username (SPEC 9.2), in the order it names them.
    mentions: list[str] = []


class ChatMessageFrame(MessageOut):
    type: Literal["chat_message"] = "chat_message"
    client_id: str | None = None


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
