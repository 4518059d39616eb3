"""/ws/chat/<room_uuid>/: a room's live chat (SPEC 4)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.conf import settings

from chat import selectors, services
from chat.events import chat_message_frames
from core.db import db_async
from core.errors import NotFound
from core.groups import room_group
from core.hub import encode
from core.ws import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, AppConsumer, Refused


class ChatConsumer(AppConsumer):
    frame_types = frozenset({"chat_message"})

    async def targets(self) -> list[str]:
        self.room_id = UUID(str(self.scope["url_route"]["kwargs"]["room_id"]))
        return [room_group(self.room_id)]

    async def authorize(self) -> None:
        if not await db_async(selectors.room_is_member)(room_id=self.room_id, user=self.user):
            exists = await db_async(selectors.room_exists)(room_id=self.room_id)
            raise Refused(CLOSE_FORBIDDEN if exists else CLOSE_NOT_FOUND)

    def control_applies(self, params: dict[str, Any]) -> bool:
        room = params.get("room_id")
        return super().control_applies(params) and (room is None or room == str(self.room_id))

    async def handle_chat_message(self, frame: dict[str, Any]) -> None:
        content, client_id = services.message_clean(
            text=frame.get("message"), client_id=frame.get("client_id")
        )
        try:
            message, created = await services.amessage_post(
                room_id=self.room_id,
                sender=self.user,
                content=content,
                client_id=client_id,
                rate=settings.CHAT_USER_RATE,
            )
        except NotFound:
            self.close_later(CLOSE_FORBIDDEN)
            return
        if not created:
            self.deliver(encode(chat_message_frames(message)[1]))
