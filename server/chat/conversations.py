"""A conversation: where a message is said.

Room chat and an AI session are two kinds of the same thing: a room's chat (`session_id` is
None) or one AI session of the room. Posting, history, the assistant's replies, the sockets and
their group all take a `Conversation`, so each is written once for both kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from django.conf import settings

from chat.models import Message
from core.groups import room_group, session_group

Kind = Literal["room", "session"]


@dataclass(frozen=True)
class Conversation:
    room_id: UUID
    session_id: UUID | None = None

    @classmethod
    def of(cls, message: Message) -> Conversation:
        return cls(room_id=message.room_id, session_id=message.ai_session_id)

    @property
    def kind(self) -> Kind:
        return "room" if self.session_id is None else "session"

    @property
    def group(self) -> str:
        """The channel-layer group of everyone connected to this conversation."""
        if self.session_id is None:
            return room_group(self.room_id)
        return session_group(self.session_id)

    @property
    def key(self) -> str:
        """A name unique among conversations, for shared state (locks, stream snapshots)."""
        if self.session_id is None:
            return f"room:{self.room_id.hex}"
        return f"session:{self.session_id.hex}"

    @property
    def rate(self) -> tuple[str, str]:
        """The rate-limit scope and rate of a person's message here (SPEC 7.3): a message in an
        AI session is a request to the assistant."""
        if self.session_id is None:
            return "chat", settings.CHAT_USER_RATE
        return "llm", settings.LLM_USER_RATE

    def __str__(self) -> str:
        return self.key
