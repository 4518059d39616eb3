"""The conversation sockets: `/ws/chat/<room_uuid>/` (a room's chat) and the seed's
`/ws/llm/<session_id>/` (an AI session).

Both are conversations the assistant can stream into, so both live here, above `chat`. They are
thin adapters: check access, greet, turn frames into service calls (`llm.services`) and ask the
process's generator to drain a queued reply. They never await the model: replies outlive the
socket that asked for them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, Literal
from uuid import UUID

from django.utils import timezone
from pydantic import BaseModel

from accounts.models import User
from chat.access import SocketAccess, room_socket_access
from chat.conversations import Conversation
from chat.events import chat_message_frames
from chat.rooms import room_json
from chat.selectors import room_counts_for_user, room_counts_of, room_ids_of, room_view
from chat.typing import typing_announce, typing_frame, typing_stopped
from chat.workspace import (
    MemberChange,
    Presence,
    Read,
    RoomAdded,
    RoomChanged,
    RoomRemoved,
    RoomUpdated,
)
from core import closecodes, sockets
from core.db import db_async
from core.errors import NotAuthenticated, NotFound, SessionInactive
from core.events import apublish, frame_event
from core.groups import room_members_group, session_group, session_group_prefix
from core.hub import encode, get_hub
from core.logs import set_log_context
from core.ws import AppConsumer, Refused
from llm import services, streams, threads
from llm.access import may_end_session, session_socket_access
from llm.events import AiJoined, AiStreamStart, frame
from llm.generation import get_generator
from llm.log import ai_debug
from llm.workspace import SessionEvent

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

    def personal(self, payload: dict[str, Any]) -> None:
        if payload.get("kind") == "typing":
            text = typing_frame(payload, for_user_id=self.user_id)
            if text is not None:
                self.deliver(text)

    async def handle_chat_message(self, frame_in: dict[str, Any]) -> None:
        typing_stopped(conversation=self.conversation, user_id=self.user_id)
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
            self.send_frame(chat_message_frames(posted.message, mentions=posted.mentions)[1])

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

    async def handle_typing(self, frame_in: dict[str, Any]) -> None:
        await typing_announce(
            conversation=self.conversation, user_id=self.user_id, username=self.user.username
        )


# What members may ask of the assistant on either kind of conversation (SPEC 4.1, 10.2).
REPLY_FRAMES = frozenset({"stop_generation", "regenerate", "cancel_reply"})
# Both kinds of conversation: what the members send there beside the assistant's frames.
CONVERSATION_FRAMES = frozenset({"chat_message", "typing"}) | REPLY_FRAMES


class RoomChatConsumer(ConversationConsumer):
    """/ws/chat/<room_uuid>/: a room's live chat (SPEC 4), where `@AI_Assistant` is answered
    (SPEC 10.3)."""

    frame_types = CONVERSATION_FRAMES
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

    frame_types = CONVERSATION_FRAMES
    ai_requests = True
    url_kwarg = "session_id"
    # (the session's group, this socket's entry) while it is on the session's roster of viewers
    roster: tuple[str, str] | None = None

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

    async def on_open(self) -> None:
        await super().on_open()
        group = self.group_of(self.target_id)
        names = await sockets.roster_join(group, self.socket_id, self.user.username)
        self.roster = (group, sockets.roster_entry(self.socket_id, self.user.username))
        await announce_viewers(group, names)

    async def on_close(self) -> None:
        if self.roster is not None:
            group, _ = self.roster
            self.roster = None
            names = await sockets.roster_leave(group, self.socket_id, self.user.username)
            await announce_viewers(group, names)


class SessionViewers(BaseModel):
    type: Literal["session_viewers"] = "session_viewers"
    usernames: list[str]


async def announce_viewers(group: str, usernames: list[str]) -> None:
    """Who has the session open (SPEC 9.3), to everyone on it."""
    if group.startswith(session_group_prefix()):
        await apublish(frame_event(group, frame(SessionViewers(usernames=usernames))))


class RoomState:
    """What a `/ws/me/` socket keeps of one of its user's rooms, to put the user's own counts
    into the room's events without asking the database for each."""

    __slots__ = ("last_message_id", "last_read", "mentions", "unread")

    def __init__(self, last_read: int, unread: int, mentions: int, last_message_id: int) -> None:
        self.last_read = last_read
        self.unread = unread
        self.mentions = mentions
        self.last_message_id = last_message_id


class MeConsumer(AppConsumer):
    """/ws/me/: everything about the user's rooms that happens outside the page they have open
    (SPEC 9.1), on every process, in order, once.

    The socket joins its user's group and the members' group of each of the user's rooms
    (core.groups.room_members_group). Events arrive as personal ones (chat.workspace,
    llm.workspace): the socket keeps each room's read marker and counts, made from one query
    when it opens, and makes each frame for its own user from them.
    """

    def control_applies(self, params: dict[str, Any]) -> bool:
        # A removal from one room closes the sockets on that room, not this one.
        return "room_id" not in params and super().control_applies(params)

    async def targets(self) -> list[str]:
        self.rooms: dict[str, RoomState] = {}
        self.presence: dict[int, bool] = {}
        self._ready = False
        self._held: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        room_ids = await db_async(room_ids_of)(user_id=self.user_id)
        return [room_members_group(room_id) for room_id in room_ids]

    async def authorize(self) -> None:
        # Before the handshake completes: a client that fetches its rooms once the socket is
        # open sees at least what this snapshot counted, and every event after it comes.
        counts = await db_async(room_counts_for_user)(user_id=self.user_id)
        for c in counts:
            self.rooms[str(c.room_id)] = RoomState(
                c.last_read_message_id, c.unread_count, c.mention_count, c.last_message_id
            )
        # Rooms joined or left between the look-up of the groups and the counts.
        wanted = {room_members_group(c.room_id) for c in counts}
        for group in wanted.difference(self.hub_groups):
            await self._join(group)
        for group in [g for g in self.hub_groups if g.startswith("members.")]:
            if group not in wanted:
                await self._leave(group)
        self._ready = True
        held, self._held = self._held, []
        for payload in held:
            self.personal(payload)

    def _gone(self) -> bool:
        return self._closing

    async def _join(self, group: str) -> None:
        if self._gone() or group in self.hub_groups:
            return
        self.hub_groups.append(group)
        await get_hub().join(group, self)
        # Released, or the room removed, while joining: nobody else would leave it.
        if self._gone() or group not in self.hub_groups:
            await get_hub().leave(group, self)

    async def _leave(self, group: str) -> None:
        if group in self.hub_groups:
            self.hub_groups.remove(group)
            await get_hub().leave(group, self)

    def _later(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def on_close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    # --- events ------------------------------------------------------------------------

    def personal(self, payload: dict[str, Any]) -> None:
        if self._closing:
            return
        if not self._ready:
            self._held.append(payload)
            return
        kind = payload.get("kind")
        room = self.rooms.get(payload.get("room_id", ""))
        if kind == "room_activity":
            if room is not None:
                self._activity(room, payload)
        elif kind == "presence":
            self._presence(payload)
        elif kind == "room_added":
            self._room_added(payload)
        elif kind == "room_removed":
            if room is not None:
                self._room_removed(payload)
        elif kind == "read":
            if room is not None:
                self._read(room, payload)
        elif room is None:
            return
        elif kind == "room_changed":
            self._changed(room, payload)
        elif kind == "room_updated":
            self.send_frame(
                RoomUpdated(room=self._personal_room(room, payload["room"])).model_dump()
            )
        elif kind in ("member_added", "member_removed"):
            if payload["user_id"] != self.user_id:  # room_added / room_removed tell the user
                self.send_frame(
                    MemberChange(
                        type=kind, room_id=payload["room_id"], username=payload["username"]
                    ).model_dump()
                )
        elif kind in ("session_started", "session_ended", "session_updated"):
            session = dict(payload["session"])
            # Who may end a session may also change it (llm.access.can_edit_session).
            session["can_end"] = session["can_edit"] = may_end_session(
                user_id=self.user_id,
                is_staff=bool(self.user.is_staff),
                is_active=bool(session["is_active"]),
                owner_id=payload["owner_id"],
                creator_id=payload["creator_id"],
            )
            self.send_frame(SessionEvent(type=kind, session=session).model_dump())

    def _activity(self, room: RoomState, payload: dict[str, Any]) -> None:
        message_id = payload["message_id"]
        if message_id <= room.last_message_id:
            return  # counted in the snapshot this socket opened with
        room.last_message_id = message_id
        if payload["sender_id"] == self.user_id:
            return  # the user's own message: news to nobody's unread count
        mention = self.user_id in payload["mentioned"]
        if message_id > room.last_read:
            room.unread += 1
            room.mentions += mention
        # The part every member's frame shares is encoded once per process, on the event.
        head = payload.get("_encoded")
        if head is None:
            head = payload["_encoded"] = encode(
                {
                    "type": "room_activity",
                    "room_id": payload["room_id"],
                    "message_id": message_id,
                    "username": payload["username"],
                    "preview": payload["preview"],
                    "timestamp": payload["timestamp"],
                }
            )[:-1]
        self.deliver(
            f'{head},"unread_count":{room.unread},"mention":{"true" if mention else "false"}}}'
        )

    def _changed(self, room: RoomState, payload: dict[str, Any]) -> None:
        """A room-chat message edited or deleted. It counts for this user when it is someone
        else's, after the read marker and already counted (its `room_activity` came, or the
        snapshot had it): a deleted one is no longer unread, and the mention follows the text."""
        message_id = payload["message_id"]
        before = (room.unread, room.mentions)
        counted = room.last_read < message_id <= room.last_message_id
        if counted and payload["sender_id"] != self.user_id:
            room.unread -= payload["deleted"]
            room.mentions += (self.user_id in payload["mentioned"]) - (
                self.user_id in payload["mentioned_before"]
            )
        # A message newer than the one changed may have come since: it is the last one then.
        last_changed = payload["last_changed"] and message_id >= room.last_message_id
        if last_changed:
            last = payload["last_message"]
            room.last_message_id = last["message_id"] if last else 0
        elif before == (room.unread, room.mentions):
            return
        self.send_frame(
            RoomChanged(
                room_id=payload["room_id"],
                unread_count=room.unread,
                mention_count=room.mentions,
                last_changed=last_changed,
                last_message=payload["last_message"] if last_changed else None,
            ).model_dump()
        )

    def _presence(self, payload: dict[str, Any]) -> None:
        user_id, online = payload["user_id"], bool(payload["online"])
        # A user sharing several rooms with this one is announced in each: the first copy
        # tells, the others change nothing.
        if user_id == self.user_id or self.presence.get(user_id) == online:
            return
        self.presence[user_id] = online
        self.send_frame(Presence(username=payload["username"], online=online).model_dump())

    def _room_added(self, payload: dict[str, Any]) -> None:
        room = payload["room"]
        last = room.get("last_message") or {}
        self.rooms[payload["room_id"]] = RoomState(
            room["last_read_message_id"],
            room["unread_count"],
            room["mention_count"],
            last.get("message_id") or 0,
        )
        self.send_frame(RoomAdded(room=room).model_dump())
        self._later(self._follow(UUID(payload["room_id"])))

    async def _follow(self, room_id: UUID) -> None:
        """Join a new room's members group; whatever was said there before the join took
        effect comes as one `room_updated` with the counts as they are now."""
        await self._join(room_members_group(room_id))
        state = self.rooms.get(str(room_id))
        if state is None:
            return
        counts = await db_async(room_counts_of)(user_id=self.user_id, room_id=room_id)
        if counts is None or counts.last_message_id <= state.last_message_id:
            return
        view = await db_async(_room_view_json)(user_id=self.user_id, room_id=room_id)
        if view is not None and str(room_id) in self.rooms:
            state.last_read, state.unread, state.mentions = (
                counts.last_read_message_id,
                counts.unread_count,
                counts.mention_count,
            )
            state.last_message_id = counts.last_message_id
            self.send_frame(RoomUpdated(room=view).model_dump())

    def _room_removed(self, payload: dict[str, Any]) -> None:
        room_id = payload["room_id"]
        self.rooms.pop(room_id, None)
        self.send_frame(RoomRemoved(room_id=room_id, reason=payload["reason"]).model_dump())
        self._later(self._leave(room_members_group(UUID(room_id))))

    def _read(self, room: RoomState, payload: dict[str, Any]) -> None:
        room.last_read = payload["last_read_message_id"]
        room.unread = payload["unread_count"]
        room.mentions = payload["mention_count"]
        self.send_frame(
            Read(
                room_id=payload["room_id"],
                last_read_message_id=room.last_read,
                unread_count=room.unread,
                mention_count=room.mentions,
            ).model_dump()
        )

    def _personal_room(self, state: RoomState, room: dict[str, Any]) -> dict[str, Any]:
        return {
            **room,
            "is_owner": room["owner"] == self.user.username,
            "unread_count": state.unread,
            "mention_count": state.mentions,
            "last_read_message_id": state.last_read,
        }


def _room_view_json(*, user_id: int, room_id: UUID) -> dict[str, Any] | None:
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return None
    try:
        return room_json(room_view(user=user, room_id=room_id), viewer_id=user_id)
    except NotFound:
        return None
