"""The per-process hub: one channel-layer channel per server process fans events out to sockets.

The tutorial pattern joins every socket to a group, so a broadcast costs one layer message and
one JSON encoding per recipient. Here each process joins a group once, on behalf of all of its
sockets in it, receives each event once, encodes the frame once (once more for each variant:
the sender's own sockets, the room owner's) and hands the text to each local socket's outbox.
The channel layer is still the only thing that crosses processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings

from core import sockets
from core.events import CONTROL, FRAME, PERSONAL
from core.serving import claim_async

logger = logging.getLogger(__name__)


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


class Subscriber(Protocol):
    user_id: int

    def deliver(self, text: str, meta: dict[str, Any] | None = None) -> None:
        """Queue an encoded frame for the socket; must not block."""

    def control(self, action: str, params: dict[str, Any]) -> None:
        """Act on a control event (close the socket, ...); must not block."""


class Hub:
    def __init__(self, layer: BaseChannelLayer) -> None:
        self.layer = layer
        self.channel: str = ""
        self.groups: dict[str, set[Subscriber]] = {}
        self._lock = asyncio.Lock()
        self._started = False
        self._tasks: list[asyncio.Task[None]] = []
        self._retry: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        # A server started without the lifespan hooks is checked at its first socket.
        await claim_async()
        self.channel = await self.layer.new_channel()
        self._tasks = [
            asyncio.create_task(self._read(), name="hub-reader"),
            asyncio.create_task(self._refresh(), name="hub-refresher"),
            asyncio.create_task(self._vouch(), name="hub-presence"),
        ]
        self._started = True

    async def join(self, group: str, subscriber: Subscriber) -> None:
        async with self._lock:
            if not self._started:
                await self._start()
            members = self.groups.get(group)
            if members is None:
                members = self.groups[group] = set()
                try:
                    await self.layer.group_add(group, self.channel)
                except Exception:
                    # The layer is unreachable (Redis restarting): the socket opens all the
                    # same and the group is announced again shortly; what it misses meanwhile
                    # the client fetches from history.
                    logger.warning("Could not join group %s; retrying", group, exc_info=True)
                    self._rejoin_soon()
            members.add(subscriber)

    def _rejoin_soon(self) -> None:
        if self._retry is None or self._retry.done():
            self._retry = asyncio.create_task(self._rejoin_after(1.0), name="hub-rejoin")

    async def _rejoin_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if not await self._rejoin():
            self._rejoin_soon()

    async def leave(self, group: str, subscriber: Subscriber) -> None:
        async with self._lock:
            members = self.groups.get(group)
            if members is None:
                return
            members.discard(subscriber)
            if not members:
                del self.groups[group]
                try:
                    await self.layer.group_discard(group, self.channel)
                except Exception:
                    # The membership expires by itself; a failed discard only costs a few
                    # events that this process will ignore.
                    logger.warning("Could not leave group %s", group, exc_info=True)

    async def leave_all(self, groups: Iterable[str], subscriber: Subscriber) -> None:
        for group in groups:
            await self.leave(group, subscriber)

    def dispatch(self, message: dict[str, Any]) -> None:
        members = self.groups.get(message.get("group", ""))
        if not members:
            return
        kind = message.get("type")
        if kind == FRAME:
            text = encode(message["frame"])
            self_text: str | None = None
            sender_id = message.get("sender_id")
            meta = message.get("meta")
            if "self_frame" in message:
                self_text = encode(message["self_frame"])
            skip_sender = message.get("skip_sender", False)
            user_texts = {user_id: encode(f) for user_id, f in message.get("user_frames", ())}
            for member in list(members):
                if member.user_id == sender_id:
                    if self_text is not None:
                        member.deliver(self_text, meta)
                        continue
                    if skip_sender:
                        continue
                member.deliver(user_texts.get(member.user_id, text) if user_texts else text, meta)
        elif kind == PERSONAL:
            payload = message["payload"]
            for member in list(members):
                personal = getattr(member, "personal", None)
                if personal is not None:
                    personal(payload)
        elif kind == CONTROL:
            for member in list(members):
                member.control(message["action"], message.get("params") or {})
        else:
            logger.warning("Hub ignored an event of unknown type %r", kind)

    async def _read(self) -> None:
        failing = False
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                if not failing:
                    logger.exception("Channel layer receive failed; retrying")
                failing = True
                await asyncio.sleep(0.5)
                continue
            if failing:
                failing = False
                logger.warning("Channel layer is back; re-joining %d groups", len(self.groups))
                await self._rejoin()
                self._resync()
            try:
                self.dispatch(message)
            except Exception:
                logger.exception("Hub could not dispatch %s", message.get("type"))

    def _resync(self) -> None:
        """Tell every local socket that events may have been lost while the layer was down,
        so that clients refetch what they missed from history."""
        text = encode({"type": "resync", "reason": "channel_layer_recovered"})
        for member in {m for members in self.groups.values() for m in members}:
            member.deliver(text)

    async def _rejoin(self) -> bool:
        """Announce every group again; False if the layer failed on the way."""
        for group in list(self.groups):
            try:
                await self.layer.group_add(group, self.channel)
            except Exception:
                logger.warning("Could not re-join group %s", group, exc_info=True)
                return False
        return True

    async def _refresh(self) -> None:
        # Group memberships expire in Redis (channels-redis group_expiry) and vanish when Redis
        # restarts; re-announcing them keeps a long-lived process subscribed.
        while True:
            await asyncio.sleep(settings.HUB_REFRESH_SECONDS)
            await self._rejoin()

    async def _vouch(self) -> None:
        # This process's entries in the shared socket registry expire unless renewed, so the
        # sockets of a process that died stop counting; every process also sweeps out the users
        # left with no live socket, and one of them announces each (core.sockets).
        while True:
            await asyncio.sleep(sockets.refresh_interval())
            subscribers = {m for members in self.groups.values() for m in members}
            live = {
                (member.user_id, socket_id)
                for member in subscribers
                if (socket_id := getattr(member, "socket_id", None)) is not None
            }
            on_rosters = {
                entry for member in subscribers if (entry := getattr(member, "roster", None))
            }
            try:
                for user_id in await sockets.refresh(live):
                    sockets.announce_soon(user_id, True)
                for user_id in await sockets.sweep():
                    sockets.announce_soon(user_id, False)
                await sockets.announce_rosters(await sockets.roster_refresh(on_rosters))
            except Exception:
                logger.warning("Could not refresh the socket registry", exc_info=True)

    async def close(self) -> None:
        if self._retry is not None:
            self._tasks.append(self._retry)
            self._retry = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self.groups.clear()
        self._started = False


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    """The hub of the running event loop (a server process has one loop, so one hub)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        layer = get_channel_layer()
        if layer is None:  # pragma: no cover - settings always configure a layer
            raise RuntimeError("No channel layer is configured.")
        hub = _hubs[loop] = Hub(layer)
    return hub
