"""The server as deploy/container.sh starts it (and `make serve`, which runs the same script):
real processes on loopback, real requests.

- The client address that sign-in failures are counted against is the one the trusted proxy
  appended to X-Forwarded-For, never the left-most entry a client writes itself, whatever
  FORWARDED_ALLOW_IPS the script accepts.
- uvicorn's limits for greedy clients are on: unfinished request heads past 16 KiB, idle
  keep-alive connections, too many connections. (A client that sends nothing, or a header line
  a second, is not timed out by uvicorn at all: the proxy in front does that.)

Each server has a SQLite database of its own (the script migrates it) and no Redis, so these
run in both passes of the suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "container.sh"
ADDRESS_LIMIT = 3
CONCURRENCY_LIMIT = 8
# Variables of the test run that must not reach the server (it reads the rest from below).
NOT_INHERITED = ("DJANGO_", "PYTEST_", "OPENAI_", "LLM_", "PROMETHEUS_", "LOGIN_", "SIGNUP_")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Launched:
    """`deploy/container.sh start` in a process group of its own."""

    def __init__(self, workdir: Path, **env: str) -> None:
        self.port = free_port()
        self.log = workdir / "server.log"
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(NOT_INHERITED)
            and k not in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "LIMIT_CONCURRENCY")
        }
        self.env = {
            **base,
            "ENV_FILE": "",
            "VENV": sys.prefix,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "1",
            "DEBUG": "false",
            "SECRET_KEY": "launcher-test-only-0123456789-abcdefghijklmnopqrstuvwxyz",
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
            "REDIS_URL": "",
            "CHANNEL_PREFIX": "launcher",
            "LLM_PROVIDER": "echo",
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
            "LOGIN_FAILURE_RATE_PER_ADDRESS": f"{ADDRESS_LIMIT}/hour",
            "LOG_LEVEL": "WARNING",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> bool:
        """True once the server listens; False if the script exited first (a refusal)."""
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
                [str(SCRIPT), "start"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not listen within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def login(self, forwarded_for: str) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/auth/login/",
            data=json.dumps({"username": "nobody", "password": "wrong"}).encode(),
            headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - http, loopback
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Launched]]:
    started: list[Launched] = []

    def make(**env: str) -> Launched:
        server = Launched(tmp_path, **env)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


# nginx's `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for` (the README's set-up)
# appends the address it saw to whatever the client sent; the test plays nginx on 127.0.0.1.
@pytest.mark.parametrize("proxies", [None, "*", "127.0.0.1, ::1", "127.0.0.0/8"])
def test_a_forged_left_most_forwarded_for_does_not_escape_the_address_throttle(launch, proxies):
    server = launch(**({} if proxies is None else {"FORWARDED_ALLOW_IPS": proxies}))
    if not server.start():
        # Refusing a configuration is fine, with the reason, but not the default one.
        assert proxies is not None, server.output()
        assert "FORWARDED_ALLOW_IPS" in server.output()
        assert server.proc is not None
        assert server.proc.returncode != 0
        return
    client = "203.0.113.7"
    for i in range(ADDRESS_LIMIT):
        assert server.login(f"198.51.100.{i}, {client}") == 401
    assert server.login(f"198.51.100.{ADDRESS_LIMIT}, {client}") == 429
    assert server.login(f"{client}, 198.51.100.99") == 401  # another client, not throttled


def test_the_wildcard_is_refused_with_the_reason(launch):
    server = launch(FORWARDED_ALLOW_IPS="*")
    assert not server.start(), "the server started with FORWARDED_ALLOW_IPS=*"
    assert "List the proxy's address" in server.output()


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    server = Launched(tmp_path_factory.mktemp("limits"), LIMIT_CONCURRENCY=str(CONCURRENCY_LIMIT))
    assert server.start(), server.output()
    yield server
    server.stop()


def connect(server: Launched) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_request_head_still_unfinished_past_16_kib_is_refused(limited):
    """uvicorn (h11) buffers at most 16 KiB of a request line and headers that have not ended;
    with httptools it kept reading, however much came."""
    with connect(limited) as sock:
        padding = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(20))
        # No blank line: the head never ends.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + padding)
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]


def test_headers_within_the_limit_are_served(limited):
    with connect(limited) as sock:
        padding = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(8))
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + padding + b"\r\n"
        )
        assert read_answer(sock).startswith(b"HTTP/1.1 200 ")


def test_an_idle_keep_alive_connection_is_closed_by_the_server(limited):
    with connect(limited) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        # The answer, then nothing more from us: the server ends the connection by itself
        # (recv returns b"" at its close; a connection kept open would time out instead).
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_connections_past_the_limit_get_503(limited):
    held = [connect(limited) for _ in range(CONCURRENCY_LIMIT)]
    try:
        with connect(limited) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert read_answer(sock).startswith(b"HTTP/1.1 503 ")
    finally:
        for sock in held:
            sock.close()
