"""Fixtures of the multi-process tests: real server processes over the test database and Redis.

pytest-django creates `test_<name>` and the server processes are pointed at it, so the rows a
test commits (`django_db(transaction=True)`) are what the servers read.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.servers import ServerProcess, app_env, postgres_url, provider_env
from testkit.upstream import FakeUpstream

# Short enough to keep the dead-holder test fast, long enough for a renewal every second.
LOCK_TTL_SECONDS = 3
# The servers' database sessions carry this name, so the run can wait for them to end.
SERVER_APP_NAME = "chat-test-server"
CHAT_RATE = 4
LLM_RATE = 3


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[FakeUpstream]:
    """The servers' provider, in the tests' event loop; each test `reset`s it."""
    server = await FakeUpstream().start()
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


@contextlib.contextmanager
def two_servers(upstream: FakeUpstream, logs: Path, name: str, **extra: str) -> Iterator[Cluster]:
    """Servers "a" and "b" over the test database and Redis with `upstream` as the provider,
    under a Redis key prefix of their own (so their counters and locks start empty on every
    run), removed with their keys afterwards."""
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("needs PostgreSQL and Redis")
    prefix = f"{settings.CHANNEL_PREFIX}-{name}-{uuid.uuid4().hex[:8]}"
    group = Cluster(server_env(upstream, prefix, **extra), logs)
    try:
        group.start("a")
        group.start("b")
        yield group
    finally:
        group.stop()
        end_server_connections()
        _forget_redis_keys(settings.REDIS_URL, prefix)


@pytest.fixture(scope="module")
def cluster(
    django_db_setup: None,
    upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    with two_servers(
        upstream,
        tmp_path_factory.mktemp("servers"),
        "mp",
        CHAT_USER_RATE=f"{CHAT_RATE}/minute",
        LLM_USER_RATE=f"{LLM_RATE}/minute",
    ) as group:
        yield group


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
