"""Someone is typing (SPEC 9.3): told to the others in the conversation, at most once per user
per TYPING_EVERY_SECONDS across every server process, never to the typist's own sockets, and
stored nowhere. Clients send `typing` at most every 3 s while their user types and show it for
6 s, so a typist who keeps typing stays shown.

A big room has many typists at once, and a frame per typist per member would cost each member
of a room of 500 with 50 typists 25 frames a second, more than the chat itself. So each process
gathers the typists it hears in a conversation for BATCH_SECONDS and announces them together:
every member gets one frame, `{"type": "typing", "username", "usernames"}` (the first typist,
then all of them but the member), so each member receives at most one typing frame per second
per process however many people type. A message from a typist takes them out of the batch, so
"is typing" does not outlive the message.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Literal

from pydantic import BaseModel

from chat.conversations import Conversation
from core.events import apublish, personal_event
from core.hub import encode
from core.ratelimit import once_per

TYPING_EVERY_SECONDS = 2.0
BATCH_SECONDS = 1.0


class Typing(BaseModel):
    type: Literal["typing"] = "typing"
    username: str
    usernames: list[str]


class _Batches:
    """The typists heard on this process and not yet announced, by conversation."""

    def __init__(self) -> None:
        self.pending: dict[Conversation, dict[int, str]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def add(self, conversation: Conversation, user_id: int, username: str) -> None:
        typists = self.pending.get(conversation)
        if typists is None:
            typists = self.pending[conversation] = {}
            task = asyncio.create_task(self._flush_later(conversation))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        typists[user_id] = username

    async def _flush_later(self, conversation: Conversation) -> None:
        await asyncio.sleep(BATCH_SECONDS)
        typists = self.pending.pop(conversation, {})
        if typists:
            payload = {"kind": "typing", "typists": [[uid, name] for uid, name in typists.items()]}
            await apublish(personal_event(conversation.group, payload))


_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batches] = (
    weakref.WeakKeyDictionary()
)


def _of_this_loop() -> _Batches:
    loop = asyncio.get_running_loop()
    batches = _batches.get(loop)
    if batches is None:
        batches = _batches[loop] = _Batches()
    return batches


async def typing_announce(*, conversation: Conversation, user_id: int, username: str) -> bool:
    """Tell the conversation, within BATCH_SECONDS, that the user is typing, unless they were
    announced less than TYPING_EVERY_SECONDS ago; whether this call will announce it. It follows
    no transaction, so it is published straight from the event loop (core.events.apublish)."""
    if not await once_per(f"typing:{conversation.key}:{user_id}", TYPING_EVERY_SECONDS):
        return False
    _of_this_loop().add(conversation, user_id, username)
    return True


def typing_stopped(*, conversation: Conversation, user_id: int) -> None:
    """The user's message went: an announcement of their typing still gathering is dropped."""
    typists = _of_this_loop().pending.get(conversation)
    if typists is not None:
        typists.pop(user_id, None)


def typing_frame(payload: dict[str, Any], *, for_user_id: int) -> str | None:
    """The typing frame of one member (the typists but themselves), encoded; None when they are
    the only typist. The encodings are kept on the event, so the members of a process share
    them (one for those who did not type, one for each typist)."""
    cache: dict[int, str | None] = payload.setdefault("_frames", {})
    typists: list[list[Any]] = payload["typists"]
    key = for_user_id if any(uid == for_user_id for uid, _ in typists) else 0
    if key not in cache:
        names = [name for uid, name in typists if uid != key]
        cache[key] = (
            encode(Typing(username=names[0], usernames=names).model_dump()) if names else None
        )
    return cache[key]
