"""/ws/llm/<session_id>/: the seed's AI session socket (SPEC 4).

A thin adapter: it checks access, greets with `ai_joined` (and the reply so far, for a member
joining mid-stream), saves messages through the services and asks the process's generator for
a reply. It never awaits the model: replies outlive the socket that asked for them.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from django.conf import settings
from django.utils import timezone

from chat.events import chat_message_frames
from chat.services import message_clean
from core.db import db_async
from core.errors import NotFound, RateLimited
from core.events import apublish, control_event
from core.groups import session_group
from core.hub import encode
from core.ws import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_SESSION_ENDED, AppConsumer, Refused
from llm import selectors, services, streams
from llm.events import AiError, AiJoined, AiStreamStart, frame
from llm.generation import get_generator
from llm.log import ai_debug
from ops import metrics
from ops.logs import set_log_context

logger = logging.getLogger(__name__)


class AiSessionConsumer(AppConsumer):
    frame_types = frozenset({"chat_message", "stop_generation"})

    room_id: UUID | None = None

    async def targets(self) -> list[str]:
        self.session_id = UUID(str(self.scope["url_route"]["kwargs"]["session_id"]))
        # Each socket runs in a task of its own, so this tags only its log lines.
        set_log_context(session_id=self.session_id, user_id=self.user_id)
        # Deltas that arrive before the greeting are held, then sent after the snapshot.
        self._held: list[tuple[str, int, str]] = []
        self._snapshot: tuple[str, int] | None = None
        self._open = False
        return [session_group(self.session_id)]

    async def authorize(self) -> None:
        access = await db_async(selectors.session_socket_access)(
            session_id=self.session_id, user=self.user
        )
        if not access.exists:
            raise Refused(CLOSE_NOT_FOUND)
        if not access.member:
            raise Refused(CLOSE_FORBIDDEN)
        if not access.active:
            raise Refused(CLOSE_SESSION_ENDED)
        self.room_id = access.room_id

    async def on_open(self) -> None:
        ai_debug("user %s joined AI session %s", self.user_id, self.session_id)
        self.send_frame(frame(AiJoined(timestamp=timezone.now().isoformat())))
        snapshot = await streams.snapshot_get(self.session_id)
        if snapshot is not None:
            self._snapshot = (snapshot.stream_id, snapshot.index)
            self.send_frame(
                frame(
                    AiStreamStart(
                        stream_id=snapshot.stream_id,
                        timestamp=snapshot.timestamp,
                        text=snapshot.text,
                    )
                )
            )
        self._open = True
        for stream_id, index, text in self._held:
            self._deliver_delta(text, stream_id, index)
        self._held.clear()

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
        room = params.get("room_id")
        return super().control_applies(params) and (
            room is None or self.room_id is None or room == str(self.room_id)
        )

    async def handle_chat_message(self, frame_in: dict[str, Any]) -> None:
        content, client_id = message_clean(
            text=frame_in.get("message"), client_id=frame_in.get("client_id")
        )
        try:
            message, created, event = await db_async(services.ai_message_post)(
                session_id=self.session_id,
                sender=self.user,
                content=content,
                client_id=client_id,
                rate=settings.LLM_USER_RATE,
            )
        except RateLimited as limited:
            metrics.record_refusal("rate_limited")
            self.send_frame(frame(AiError(code=limited.code, retry_after=limited.retry_after)))
            return
        except services.SessionInactive:
            self.send_frame(frame(AiError(code=services.SessionInactive.code)))
            self.close_later(CLOSE_SESSION_ENDED)
            return
        except NotFound:
            self.close_later(CLOSE_FORBIDDEN)
            return
        if event is not None:
            try:
                await apublish(event)
            except Exception:
                # Saved is saved (and its reply queued); members catch up from history.
                logger.exception("Could not publish message %s", message.pk)
        if created:
            get_generator().kick(self.session_id)
        else:
            self.deliver(encode(chat_message_frames(message)[1]))

    async def handle_stop_generation(self, frame_in: dict[str, Any]) -> None:
        ai_debug("user %s asked to stop the reply in session %s", self.user_id, self.session_id)
        await apublish(control_event(session_group(self.session_id), "stop"))
