"""Shared fixtures of the app's tests: users, signed-in API clients, signed-in sockets.

The service gating (`redis`, `postgres` markers) and what every test tree shares are in
testkit.pytest_plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.cache import cache
from django.test import Client

from accounts.models import User
from chat.models import ChatRoom
from chat.services import room_create
from core import ratelimit, sockets

PASSWORD = "Correct-Horse-42"


@pytest.fixture(autouse=True)
async def _replies_finish_within_the_test() -> AsyncIterator[None]:
    """A reply still being generated when a test ends would write into the next test's
    database; wait for it (or end it) first."""
    yield
    from llm.generation import get_generator

    tasks = set(get_generator().tasks)
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=5)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)
    # So does the announcement that a user whose last socket closed went offline.
    await asyncio.wait_for(sockets.drain_announcements(), timeout=5)


@pytest.fixture(autouse=True)
def _fresh_shared_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    ratelimit.reset()
    sockets.reset()
    cache.clear()
    # Offline at once: the tests of the grace set their own.
    monkeypatch.setattr(sockets, "OFFLINE_GRACE_SECONDS", 0.0)
    yield
    ratelimit.reset()


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(username: str | None = None, **extra: Any) -> User:
        name = username or f"user{next(counter)}"
        return User.objects.create_user(username=name, password=PASSWORD, **extra)

    return make


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[..., User]) -> User:
    return make_user("bob")


@pytest.fixture
def carol(make_user: Callable[..., User]) -> User:
    return make_user("carol")


@pytest.fixture
def room(alice: User, bob: User) -> ChatRoom:
    """ "devs": alice owns it, bob takes part."""
    room = room_create(owner=alice, name="devs")
    room.participants.add(bob)
    return room


class ApiClient(Client):
    """A test client speaking JSON, like the seed's `fetch(..., {credentials: 'include'})`."""

    def post_json(self, path: str, body: Any = None, **extra: Any) -> Any:
        data = json.dumps(body) if body is not None else ""
        return self.post(path, data=data, content_type="application/json", **extra)


@pytest.fixture
def client_for() -> Callable[[User | None], ApiClient]:
    def make(user: User | None) -> ApiClient:
        c = ApiClient()
        if user is not None:
            c.force_login(user)
        return c

    return make


@pytest.fixture
def anon() -> ApiClient:
    return ApiClient()


def session_cookie(user: User) -> str:
    c = Client()
    c.force_login(user)
    return c.cookies[settings.SESSION_COOKIE_NAME].value


class Socket(WebsocketCommunicator):  # type: ignore[misc]
    """A connected test socket with JSON helpers."""

    last_seq = 0

    async def recv(self, timeout: float = 3) -> dict[str, Any]:
        """The next frame, checking (and removing) its sequence number: every frame of a
        socket carries the next one, with no gap."""
        frame: dict[str, Any] = await self.receive_json_from(timeout=timeout)
        seq = frame.pop("seq", None)
        assert seq == self.last_seq + 1, f"frame {frame} has seq {seq} after {self.last_seq}"
        self.last_seq = seq
        return frame

    async def recv_type(self, frame_type: str, timeout: float = 3) -> dict[str, Any]:
        """The next frame of this type, skipping others."""
        while True:
            frame = await self.recv(timeout)
            if frame.get("type") == frame_type:
                return frame

    async def closed_with(self, timeout: float = 3) -> int | None:
        """Wait for the server's close and return its code (frames before it are skipped)."""
        while True:
            message = await self.receive_output(timeout)
            if message["type"] == "websocket.close":
                return message.get("code")  # type: ignore[no-any-return]


@pytest.fixture
async def ws() -> AsyncIterator[Callable[..., Any]]:
    """Open a socket on the real ASGI stack (auth, origin guard, router) as a user."""
    from config.asgi import application

    opened: list[Socket] = []

    async def connect(
        path: str, user: User | None, *, origin: str | None = None, cookie: str | None = None
    ) -> Socket:
        headers = [(b"host", b"testserver")]
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        if cookie is None and user is not None:
            cookie = await _async_cookie(user)
        if cookie is not None:
            headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
        sock = Socket(application, path, headers=headers)
        connected, _ = await sock.connect(timeout=5)
        assert connected
        opened.append(sock)
        return sock

    yield connect
    for sock in opened:
        # A socket whose application already ended is left alone: closed by the server, or
        # cancelled by a receive that timed out in a failing test, whose disconnect would
        # raise CancelledError here and leave the database unflushed for every later test.
        if sock.future.done():
            continue
        with contextlib.suppress(Exception):
            await sock.disconnect()


async def _async_cookie(user: User) -> str:
    from asgiref.sync import sync_to_async

    return await sync_to_async(session_cookie)(user)


async def asgi_request(
    method: str, path: str, body: bytes, *, cookie: str | None = None, chunked: bool = False
) -> tuple[int, dict[str, Any]]:
    """One JSON request through the whole ASGI application, as uvicorn hands it over (the test
    client starts below it, past the ASGI wrappers): with a Content-Length, or `chunked` in
    8 KiB pieces without one. The status and the JSON answer."""
    from config.asgi import application

    headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    else:
        headers.append((b"content-length", str(len(body)).encode()))
    if cookie is not None:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    pieces = [body[i : i + 8192] for i in range(0, len(body), 8192)] or [b""]
    incoming = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()  # the client stays connected until the answer
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(application(scope, receive, send), 10)
    start = next(m for m in sent if m["type"] == "http.response.start")
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(answer)
