"""Fixtures of the multi-process tests: real server processes over the test database and Redis.

pytest-django creates `test_<name>` and the server processes are pointed at it, so the rows a
test commits (`django_db(transaction=True)`) are what the servers read.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_DIR = Path(__file__).resolve().parents[2]
if str(REPO_DIR) not in sys.path:  # the server helper lives in bench/
    sys.path.insert(0, str(REPO_DIR))

from bench.servers import ServerProcess, app_env, postgres_url, provider_env  # noqa: E402
from llm.tests.upstream import Behavior, FakeUpstream  # noqa: E402

# Short enough to keep the dead-holder test fast, long enough for a renewal every second.
LOCK_TTL_SECONDS = 3
# The servers' database sessions carry this name, so the run can wait for them to end.
SERVER_APP_NAME = "chat-test-server"
CHAT_RATE = 4
LLM_RATE = 3


def pytest_runtest_setup(item: pytest.Item) -> None:
    from django.conf import settings
    from django.db import connection

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


@pytest.fixture(scope="module", autouse=True)
async def _close_thread_connections() -> AsyncIterator[None]:
    """Close the connection of asgiref's sync thread, so the test database can be dropped."""
    yield
    from asgiref.sync import sync_to_async
    from django.db import connections

    await sync_to_async(connections.close_all)()


class TimedUpstream(FakeUpstream):
    """The local OpenAI-compatible server, also noting when each stream ended."""

    def __init__(self) -> None:
        super().__init__()
        self.stream_ended_at: list[float] = []

    async def _stream(
        self, writer: asyncio.StreamWriter, body: dict[str, Any], behavior: Behavior
    ) -> None:
        try:
            await super()._stream(writer, body, behavior)
        finally:
            self.stream_ended_at.append(time.monotonic())

    def reset(self, behavior: Behavior) -> None:
        self.default = behavior
        self.queue.clear()
        self.requests.clear()
        self.first_chunk_sent_at.clear()
        self.stream_ended_at.clear()


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[TimedUpstream]:
    server = await TimedUpstream().start()
    yield server
    await server.stop()


class Cluster:
    """Two server processes, A and B, and a way to start more (to kill one)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.processes: list[ServerProcess] = []

    def start(self, name: str) -> ServerProcess:
        proc = ServerProcess(env=self.env, log_path=self.logs / f"{name}.log").start()
        self.processes.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.processes:
            proc.stop()


def server_database_url(settings_dict: Any) -> str:
    """The test database's URL for a server process, its sessions named SERVER_APP_NAME."""
    return f"{postgres_url(settings_dict)}?application_name={SERVER_APP_NAME}"


def server_env(upstream: FakeUpstream, prefix: str, **extra: str) -> dict[str, str]:
    """The environment of a test server process: the test database and Redis, `upstream` as
    the provider, short lock and time-outs, and a Redis key prefix of its own."""
    from django.conf import settings
    from django.db import connection

    return app_env(
        database_url=server_database_url(connection.settings_dict),
        redis_url=settings.REDIS_URL,
        prefix=prefix,
        secret_key=settings.SECRET_KEY,
        DB_CONN_MAX_AGE="0",
        **provider_env(upstream, LLM_TIMEOUT_SECONDS="5"),
        LLM_LOCK_TTL_SECONDS=str(LOCK_TTL_SECONDS),
        **extra,
    )


@pytest.fixture(scope="module")
def cluster(
    django_db_setup: None,
    upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("needs PostgreSQL and Redis")
    # A prefix of its own: the servers' rate-limit counters and locks start empty on every run.
    prefix = f"{settings.CHANNEL_PREFIX}-mp-{uuid.uuid4().hex[:8]}"
    env = server_env(
        upstream,
        prefix,
        CHAT_USER_RATE=f"{CHAT_RATE}/minute",
        LLM_USER_RATE=f"{LLM_RATE}/minute",
    )
    group = Cluster(env, tmp_path_factory.mktemp("servers"))
    try:
        group.start("a")
        group.start("b")
        yield group
    finally:
        group.stop()
        end_server_connections()
        _forget_redis_keys(settings.REDIS_URL, prefix)


@pytest.fixture
async def peers() -> AsyncIterator[Any]:
    """Open a member's real WebSocket to a server process (`await peers(server, path,
    cookie)`); each is closed at the end of the test."""
    from .test_scaleout import Peer

    opened: list[Peer] = []

    async def open_(server: Any, path: str, cookie: str) -> Peer:
        peer = await Peer.open(server, path, cookie)
        opened.append(peer)
        return peer

    yield open_
    for peer in opened:
        await peer.close()


def end_server_connections(within: float = 5.0) -> None:
    """Wait for the stopped (or killed) servers' database sessions to go, so that the test
    database can be dropped at the end of the run; end any still there after `within` s.
    (Over a connection of its own: module-scoped fixtures may not use Django's.)"""
    import psycopg
    from django.db import connection

    query = "FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s"
    deadline = time.monotonic() + within
    with psycopg.connect(postgres_url(connection.settings_dict), autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(f"SELECT count(*) {query}", [SERVER_APP_NAME]).fetchone()
            if row is None or row[0] == 0:
                return
            time.sleep(0.1)
        conn.execute(f"SELECT pg_terminate_backend(pid) {query}", [SERVER_APP_NAME])


def _forget_redis_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
