"""The conversation sockets: `/ws/chat/<room_uuid>/` (a room's chat) and the seed's
`/ws/llm/<session_id>/` (an AI session).

Both are conversations the assistant can stream into, so both live here, above `chat`. They are
thin adapters: check access, greet, turn frames into service calls (`llm.services`) and ask the
process's generator to drain a queued reply. They never await the model: replies outlive the
socket that asked for them.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from django.utils import timezone

from chat.access import SocketAccess, room_socket_access
from chat.conversations import Conversation
from chat.events import chat_message_frames
from core import closecodes
from core.db import db_async
from core.errors import NotAuthenticated, NotFound, SessionInactive
from core.groups import session_group
from core.logs import set_log_context
from core.ws import AppConsumer, Refused
from llm import services, streams, threads
from llm.access import session_socket_access
from llm.events import AiJoined, AiStreamStart, frame
from llm.generation import get_generator
from llm.log import ai_debug

logger = logging.getLogger(__name__)


class ConversationConsumer(AppConsumer):
    """A member's socket on one conversation: its messages in and out, and the assistant's
    replies as they stream (a member joining mid-reply gets the text so far, then the rest)."""

    conversation: Conversation
    # The conversation's room, once access is checked: until then a removal from any room
    # closes the socket (it cannot yet tell whether the removal concerns it).
    room_id: UUID | None = None

    async def targets(self) -> list[str]:
        # Deltas that arrive before the greeting are held, then sent after the snapshot.
        self._held: list[tuple[str, int, str]] = []
        self._snapshot: tuple[str, int] | None = None
        self._open = False
        self.target_id = UUID(str(self.scope["url_route"]["kwargs"][self.url_kwarg]))
        return [self.group_of(self.target_id)]

    url_kwarg: str = ""

    def group_of(self, target_id: UUID) -> str:
        raise NotImplementedError

    async def authorize(self) -> None:
        access = await self.access()
        if access.refusal is not None or access.room_id is None:
            raise Refused(access.refusal or closecodes.NOT_FOUND)
        self.room_id = access.room_id
        self.conversation = self.conversation_in(access.room_id)

    async def access(self) -> SocketAccess:
        raise NotImplementedError

    def conversation_in(self, room_id: UUID) -> Conversation:
        raise NotImplementedError

    async def on_open(self) -> None:
        self.greet()
        snapshot = await streams.snapshot_get(self.conversation)
        if snapshot is not None:
            # A reply is being written: who else is waiting, as the members already know.
            self.send_frame(await db_async(threads.queue_frame)(self.conversation))
            self._snapshot = (snapshot.stream_id, snapshot.index)
            self.send_frame(
                frame(
                    AiStreamStart(
                        stream_id=snapshot.stream_id,
                        timestamp=snapshot.timestamp,
                        text=snapshot.text,
                        reply_to=snapshot.reply_to,
                        model=snapshot.model,
                    )
                )
            )
        self._open = True
        for stream_id, index, text in self._held:
            self._deliver_delta(text, stream_id, index)
        self._held.clear()

    def greet(self) -> None:
        """The frames a socket gets first, once it is let in."""

    def deliver(self, text: str, meta: dict[str, Any] | None = None) -> None:
        if meta is None or "index" not in meta:
            super().deliver(text)
        elif not self._open:
            self._held.append((meta["stream_id"], meta["index"], text))
        else:
            self._deliver_delta(text, meta["stream_id"], meta["index"])

    def _deliver_delta(self, text: str, stream_id: str, index: int) -> None:
        # A member who joined mid-stream got the text up to the snapshot's delta already.
        if (
            self._snapshot is not None
            and self._snapshot[0] == stream_id
            and index <= self._snapshot[1]
        ):
            return
        super().deliver(text)

    def control_applies(self, params: dict[str, Any]) -> bool:
        # A removal from a room closes the member's sockets on the room and on its sessions.
        room = params.get("room_id")
        return super().control_applies(params) and (
            room is None or self.room_id is None or room == str(self.room_id)
        )

    async def handle_chat_message(self, frame_in: dict[str, Any]) -> None:
        try:
            posted = await db_async(services.message_post)(
                conversation=self.conversation,
                sender=self.user,
                text=frame_in.get("message"),
                client_id=frame_in.get("client_id"),
            )
        except NotFound:
            self.close_later(closecodes.FORBIDDEN)
            return
        except NotAuthenticated:
            self.close_later(closecodes.NOT_AUTHENTICATED)
            return
        except SessionInactive as inactive:
            self.send_error(inactive)
            self.close_later(closecodes.SESSION_ENDED)
            return
        if posted.reply_queued:
            get_generator().kick(self.conversation)
        if not posted.created:
            # A retry: its echo goes to this socket only, as the original's did.
            self.send_frame(chat_message_frames(posted.message)[1])

    async def handle_stop_generation(self, frame_in: dict[str, Any]) -> None:
        await db_async(services.reply_stop)(conversation=self.conversation, actor=self.user)

    async def handle_regenerate(self, frame_in: dict[str, Any]) -> None:
        """Ask again for the answer to the question of an AI reply (or retry a question whose
        reply failed): a new version, generated in its turn."""
        await db_async(services.reply_regenerate)(
            conversation=self.conversation, actor=self.user, message_id=frame_in.get("message_id")
        )
        get_generator().kick(self.conversation)

    async def handle_cancel_reply(self, frame_in: dict[str, Any]) -> None:
        """Who asked a question still waiting for its reply withdraws it."""
        await db_async(services.reply_withdraw)(
            conversation=self.conversation, actor=self.user, message_id=frame_in.get("message_id")
        )


# What members may ask of the assistant on either kind of conversation (SPEC 4.1, 10.2).
REPLY_FRAMES = frozenset({"stop_generation", "regenerate", "cancel_reply"})


class RoomChatConsumer(ConversationConsumer):
    """/ws/chat/<room_uuid>/: a room's live chat (SPEC 4), where `@AI_Assistant` is answered
    (SPEC 10.3)."""

    frame_types = frozenset({"chat_message"}) | REPLY_FRAMES
    url_kwarg = "room_id"

    def group_of(self, target_id: UUID) -> str:
        return Conversation(room_id=target_id).group

    async def access(self) -> SocketAccess:
        return await db_async(room_socket_access)(room_id=self.target_id, user=self.user)

    def conversation_in(self, room_id: UUID) -> Conversation:
        return Conversation(room_id=room_id)


class AiSessionConsumer(ConversationConsumer):
    """/ws/llm/<session_id>/: the seed's AI session (SPEC 4): `ai_joined` on connect, messages
    that ask the assistant, Stop."""

    frame_types = frozenset({"chat_message"}) | REPLY_FRAMES
    ai_requests = True
    url_kwarg = "session_id"

    def group_of(self, target_id: UUID) -> str:
        # Each socket runs in a task of its own, so this tags only its log lines.
        set_log_context(session_id=target_id, user_id=self.user_id)
        return session_group(target_id)

    async def access(self) -> SocketAccess:
        return await db_async(session_socket_access)(session_id=self.target_id, user=self.user)

    def conversation_in(self, room_id: UUID) -> Conversation:
        return Conversation(room_id=room_id, session_id=self.target_id)

    def greet(self) -> None:
        ai_debug("user %s joined AI session %s", self.user_id, self.target_id)
        self.send_frame(frame(AiJoined(timestamp=timezone.now().isoformat())))
