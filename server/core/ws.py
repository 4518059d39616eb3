"""WebSocket plumbing shared by every socket route.

- `SocketGuard` wraps the router: a foreign `Origin` is closed with 4403 and an anonymous
  user with 4401 before any consumer runs.
- `AppConsumer` is the base of every consumer: JSON frames in and out, the 64 KiB frame limit,
  one error frame shape, an outbox drained by one writer task (a slow reader cannot hold up
  anyone else, and is closed only when it is the reader that stopped: `AppConsumer.deliver`),
  and membership in hub groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib import auth

from core import closecodes, metrics, sockets
from core.db import db_async
from core.errors import (
    AppError,
    InvalidJson,
    RateLimited,
    UnknownType,
    app_error_for,
    error_frame,
    unavailable,
)
from core.groups import user_group
from core.hub import encode, get_hub
from core.origin import origin_allowed

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Frames queued for one socket past which it is closed as too slow, if its client has stopped
# reading: a send to it has waited SLOW_SEND_SECONDS for the client to take what it was sent.
OUTBOX_FRAMES = 2000
SLOW_SEND_SECONDS = 3.0
# Past this many it is closed whatever the reason, so that a server far behind its sockets
# cannot grow without bound (at ~200 bytes a frame, about 2 MB for one socket).
OUTBOX_FRAMES_MAX = 10_000
PONG = {"type": "pong"}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def refuse(receive: Receive, send: Send, code: int) -> None:
    """Accept the handshake and close at once, so that the client can read why."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code})
    metrics.record_socket_close(code)


def socket_route(scope: Scope) -> str:
    """The route of a socket for metrics: "chat" for /ws/chat/..., "llm" for /ws/llm/..., "me"
    for /ws/me/."""
    parts = str(scope.get("path", "")).strip("/").split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "ws" else "other"


class SocketGuard:
    """Refuse foreign origins and anonymous users on every socket route.

    Sits inside channels' AuthMiddlewareStack, which fills scope["user"] but refuses no one.
    """

    def __init__(self, inner: Callable[..., Awaitable[None]]) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if not origin_allowed(_header(scope, b"origin"), _header(scope, b"host")):
                logger.warning(
                    "WebSocket from foreign origin refused: %s", _header(scope, b"origin")
                )
                await refuse(receive, send, closecodes.FORBIDDEN)
                return
            user = scope.get("user")
            if user is None or not user.is_authenticated:
                await refuse(receive, send, closecodes.NOT_AUTHENTICATED)
                return
        await self.inner(scope, receive, send)


def still_signed_in(*, session_key: str | None, user_id: int) -> bool:
    """Whether the session `session_key` still signs in user `user_id`: it exists, the account
    is active, and the password has not changed since (Django's session auth hash)."""
    if not session_key:
        return False
    engine = import_module(settings.SESSION_ENGINE)
    holder = SimpleNamespace(session=engine.SessionStore(session_key))
    user = auth.get_user(holder)  # type: ignore[arg-type]
    return bool(user.is_authenticated and user.pk == user_id)


class NoSuchSocket:
    """The route of every path no consumer serves: refused with 4404, as a room or session
    that does not exist is (SPEC 4), without a traceback in the log."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await refuse(receive, send, closecodes.NOT_FOUND)


class Refused(Exception):
    """Raised by `AppConsumer.authorize` to close the socket with `code`."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class AppConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """A signed-in user's socket: typed JSON frames, hub fan-out, one error shape.

    Subclasses implement `authorize` (look the target up and check membership, returning the
    hub groups to join), `on_open`, and one `handle_<type>` coroutine per accepted frame type.
    """

    frame_types: frozenset[str] = frozenset()
    # A socket whose messages are requests to the assistant (an AI session): its rate limit is
    # the assistant's, reported as `ai_error` as the seed's client expects (SPEC 4.2).
    ai_requests: bool = False
    # Sockets hear the channel layer only through their process's hub. Without this, channels
    # gives every consumer a layer channel of its own and listens on it: with the in-memory
    # layer each send then scans every socket's channel (a cost that grows with every socket),
    # and with Redis each socket would hold a subscription.
    channel_layer_alias = None

    user_id: int
    hub_groups: list[str]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Counted for the whole life of the connection, however it ends (even cancelled).
        route = socket_route(scope)
        metrics.socket_opened(route)
        try:
            await super().__call__(scope, receive, send)
        finally:
            metrics.socket_closed(route)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # channels runs close_old_connections on its one sync thread before every handler,
        # a trip to that thread and back for each frame a socket receives. These handlers reach
        # the database only through core.db.db_async, whose threads do that themselves.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        self.user = self.scope["user"]
        self.user_id = int(self.user.pk)
        self.hub_groups = []
        self._outbox: asyncio.Queue[str | int] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        # The writer's progress, for telling a client that stopped reading (its writer waits
        # in a send that does not return) from a server that fell behind (`_overflowing`):
        # frames begun and frames sent, so the writer is in a send while they differ.
        self._seq = 0
        self._sent = 0
        self._watch = (-1, 0.0)  # (frames sent, when) as last seen overflowing; none yet
        self._closing = False
        self._close_sent = False
        self.socket_id = uuid.uuid4().hex
        self._registered = False
        self._accepted = False
        self._pending_close: int | None = None
        self._rechecks: set[asyncio.Task[None]] = set()
        # The handshake completes only once the socket is subscribed and allowed in, so a
        # client that sends at once cannot miss the first replies; a refusal is accepted
        # and closed at once (see close), so that the client can read its code.
        hub = get_hub()
        groups = [user_group(self.user_id)]
        try:
            registered = await sockets.register(self.user_id, self.socket_id)
            if not registered.allowed:
                logger.warning("User %s is at the cap of open sockets", self.user_id)
                raise Refused(closecodes.TOO_MANY_SOCKETS)
            self._registered = True
            if registered.came_online:
                sockets.announce_soon(self.user_id, True)
            # Join before checking access: an event that revokes access after the check can
            # then not slip past this socket. Frames wait in the outbox until the check passes.
            targets = await self.targets()
            groups.extend(targets)
            for group in groups:
                await hub.join(group, self)
                self.hub_groups.append(group)
            await self.authorize()
        except Refused as refused:
            await self._shut(refused.code)
            return
        except Exception as exc:
            down = unavailable(exc)
            if down is None:
                logger.exception("Socket of user %s could not be opened", self.user_id)
            else:
                logger.error("Socket of user %s refused: %s", self.user_id, down.message)
            await self._shut(closecodes.TRY_AGAIN if down else closecodes.INTERNAL_ERROR)
            return
        revoked = self.pending_close()
        if revoked is not None:  # access was revoked while the check ran
            await self._shut(revoked)
            return
        await self.accept()
        self._accepted = True
        self._writer = asyncio.create_task(self._write())
        await self.on_open()

    async def targets(self) -> list[str]:
        """Hub groups of the object this socket is about (parsed from the URL)."""
        return []

    async def authorize(self) -> None:
        """Raise Refused(code) unless this user may use this socket."""

    async def on_open(self) -> None:
        """Send the greeting frames, once access is granted."""

    async def _shut(self, code: int) -> None:
        self._closing = True
        await self._release()
        await self.close(code)

    async def _release(self) -> None:
        """Leave the hub's groups and stop counting towards the user's socket cap."""
        await get_hub().leave_all(getattr(self, "hub_groups", []), self)
        self.hub_groups = []
        if getattr(self, "_registered", False):
            self._registered = False
            if await sockets.unregister(self.user_id, self.socket_id):
                sockets.announce_soon(self.user_id, False)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        self._closing = True
        await self._release()
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        await self.on_close()
        await super().websocket_disconnect(message)

    async def on_close(self) -> None:
        """Clean up after the socket closed."""

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        if self._close_sent:
            return
        self._close_sent = True
        if not getattr(self, "_accepted", True):
            self._accepted = True
            await self.accept()
        metrics.record_socket_close(code if type(code) is int else 1000)
        await super().close(code=code, reason=reason)

    # --- outgoing ------------------------------------------------------------------------
    def deliver(self, text: str, meta: dict[str, Any] | None = None) -> None:
        if self._closing:
            return
        self._outbox.put_nowait(text)
        if self._outbox.qsize() > OUTBOX_FRAMES:
            self._overflowing()

    def _overflowing(self) -> None:
        """More than OUTBOX_FRAMES frames wait for this socket. That is the client's doing only
        if the writer is stuck in a send (the client's TCP window is full: it is not reading)
        and has finished none for SLOW_SEND_SECONDS: then it is closed with 1013 and its client
        reconnects and catches up from history. A server that fell behind (a burst, a busy
        process: the writer is simply not scheduled yet) keeps the frames, up to
        OUTBOX_FRAMES_MAX, rather than drop members who read perfectly well; its load is shed
        before frames are made (uvicorn's connection limit, rate limits, `typing` gathered per
        second), not by disconnecting readers."""
        now = time.monotonic()
        sent, since = self._watch
        sending = self._seq != self._sent
        stuck = sending and self._sent == sent
        if self._outbox.qsize() > OUTBOX_FRAMES_MAX:
            logger.warning("Socket of user %s is too far behind; closing it", self.user_id)
        elif stuck and now - since >= SLOW_SEND_SECONDS:
            logger.warning("Socket of user %s stopped reading; closing it", self.user_id)
        else:
            if not stuck:
                self._watch = (self._sent, now)
            return
        self.close_later(closecodes.TRY_AGAIN, drop_pending=True)

    def send_frame(self, frame: dict[str, Any]) -> None:
        self.deliver(encode(frame))

    def send_error(self, error: AppError) -> None:
        """Tell this socket's user why their frame was refused (core.errors.error_frame)."""
        metrics.record_socket_error(error.code)
        ai = True if self.ai_requests and isinstance(error, RateLimited) else None
        self.send_frame(error_frame(error, ai=ai))

    def pending_close(self) -> int | None:
        """The close code asked for while the socket was still connecting, if any."""
        return self._pending_close

    def close_later(self, code: int, *, drop_pending: bool = False) -> None:
        """Close after the frames already queued have been sent (or at once if told to)."""
        if self._closing:
            return
        self._closing = True
        if drop_pending:
            while not self._outbox.empty():
                self._outbox.get_nowait()
        if self._writer is None:
            # Still connecting: websocket_connect closes it once its checks are done.
            self._pending_close = code
            return
        self._outbox.put_nowait(code)

    def control(self, action: str, params: dict[str, Any]) -> None:
        if action == "close" and self.control_applies(params):
            self.close_later(int(params["code"]))
        elif action == "recheck" and not self._closing:
            # The user's account changed (core.events.user_recheck): this socket stays only if
            # the session it was opened with still signs the user in.
            task = asyncio.create_task(self._recheck())
            self._rechecks.add(task)
            task.add_done_callback(self._rechecks.discard)

    async def _recheck(self) -> None:
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        try:
            valid = await db_async(still_signed_in)(session_key=key, user_id=self.user_id)
        except Exception:
            logger.warning("Could not re-check the session of user %s", self.user_id, exc_info=True)
            return
        if not valid:
            self.close_later(closecodes.NOT_AUTHENTICATED)

    def control_applies(self, params: dict[str, Any]) -> bool:
        """Whether a targeted control event (e.g. removal from one room) concerns this socket."""
        user_id = params.get("user_id")
        return user_id is None or user_id == self.user_id

    async def _write(self) -> None:
        # Every frame carries this socket's sequence number: frames are only ever dropped
        # together with the socket, so a client that sees a gap (or a `resync` frame, sent
        # when the channel layer may have lost events) refetches history with `after=`.
        while True:
            item = await self._outbox.get()
            if isinstance(item, int):
                await self._release()
                await self.close(item)
                return
            self._seq += 1
            try:
                # Straight to the server, past channels' generic send wrappers (hot path).
                await self.base_send(
                    {"type": "websocket.send", "text": f'{{"seq":{self._seq},{item[1:]}'}
                )
                self._sent = self._seq
            except Exception as exc:
                if self._closing or isinstance(exc, OSError):  # the client has gone
                    logger.debug("Send failed on a closing socket", exc_info=True)
                    return
                # A frame this socket cannot carry: close it rather than leave it open and
                # silent (its client reconnects and catches up from history).
                logger.warning("Socket of user %s could not send a frame; closing it", self.user_id)
                self._closing = True
                await self._release()
                with contextlib.suppress(Exception):
                    await self.close(closecodes.INTERNAL_ERROR)
                return

    # --- incoming ------------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self._closing:
            return
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.WS_MAX_FRAME_BYTES:
            self.close_later(closecodes.TOO_BIG, drop_pending=True)
            return
        try:
            if text_data is None:
                raise InvalidJson("Frames must be JSON text.")
            try:
                frame = json.loads(text_data)
            except (ValueError, RecursionError) as exc:
                raise InvalidJson("The frame is not valid JSON.") from exc
            if not isinstance(frame, dict):
                raise InvalidJson("The frame must be a JSON object.")
            frame_type = frame.get("type")
            if frame_type == "ping":
                # The client's heartbeat (SPEC 9.5): a socket that stops answering is dead to
                # it even when the browser has not noticed.
                self.send_frame(PONG)
                return
            if not isinstance(frame_type, str) or frame_type not in self.frame_types:
                raise UnknownType(f"Unknown message type: {str(frame_type)[:40]!r}.")
            handler = getattr(self, f"handle_{frame_type}")
            await handler(frame)
        except AppError as error:
            self.send_error(error)
        except Exception as exc:
            self.send_error(app_error_for(exc, where=f"a frame of user {self.user_id}"))
