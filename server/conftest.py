"""Shared test fixtures: users, signed-in API clients, signed-in sockets, service gating.

Tests marked `redis` or `postgres` run only when the run is on that service (`make test` runs
the suite a second time with TEST_DATABASE_URL / TEST_REDIS_URL); with REQUIRE_SERVICES=1
their skip becomes a failure, so CI cannot pass without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import Client

from accounts.models import User
from core import ratelimit, sockets

PASSWORD = "Correct-Horse-42"


def pytest_runtest_setup(item: pytest.Item) -> None:
    need = []
    if item.get_closest_marker("redis") and not settings.REDIS_URL:
        need.append("Redis (TEST_REDIS_URL)")
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        need.append("PostgreSQL (TEST_DATABASE_URL)")
    if need:
        reason = "needs " + " and ".join(need)
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason}, and REQUIRE_SERVICES=1")
        pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
async def _close_thread_connections() -> AsyncIterator[None]:
    """Close the connection asgiref's sync thread opened, so the test database can be dropped."""
    yield
    from asgiref.sync import sync_to_async
    from django.db import connections

    await sync_to_async(connections.close_all)()


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
        with contextlib.suppress(Exception):  # already closed by the server
            await sock.disconnect()


async def _async_cookie(user: User) -> str:
    from asgiref.sync import sync_to_async

    return await sync_to_async(session_cookie)(user)
