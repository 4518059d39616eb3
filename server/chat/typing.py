"""Someone is typing (SPEC 9.3): told to the others in the conversation, at most once per user
per TYPING_EVERY_SECONDS across every server process, never to the typist's own sockets, and
stored nowhere. Clients send `typing` at most every 3 s while their user types and show it for
6 s, so a typist who keeps typing stays shown."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from chat.conversations import Conversation
from core.events import apublish, frame_event
from core.ratelimit import once_per

TYPING_EVERY_SECONDS = 2.0


class Typing(BaseModel):
    type: Literal["typing"] = "typing"
    username: str


async def typing_announce(*, conversation: Conversation, user_id: int, username: str) -> bool:
    """Tell the conversation that the user is typing, unless they were announced less than
    TYPING_EVERY_SECONDS ago; whether this call announced it. It follows no transaction, so it
    is published straight from the event loop (core.events.apublish)."""
    if not await once_per(f"typing:{conversation.key}:{user_id}", TYPING_EVERY_SECONDS):
        return False
    frame = Typing(username=username).model_dump()
    await apublish(frame_event(conversation.group, frame, sender_id=user_id, skip_sender=True))
    return True
