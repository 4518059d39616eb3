"""Start and stop real server processes (uvicorn or daphne) for benchmarks and tests.

Each process is one server on its own loopback port, so a test can reach "process A" and
"process B" directly, as a load balancer would, and kill one of them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

REPO_DIR = Path(__file__).resolve().parent.parent
SERVER_DIR = REPO_DIR / "server"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# Flags of `make serve` that matter for a socket server (see UVICORN_FLAGS in the Makefile).
UVICORN_FLAGS = [
    "--ws-max-size",
    "65536",
    "--ws-per-message-deflate",
    "false",
    "--no-access-log",
]


# Variables of the environment that a server process started here must not inherit:
# uvicorn reads WEB_CONCURRENCY as its worker count, FORWARDED_ALLOW_IPS as its trusted proxies.
INHERITED_NOT = frozenset({"WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "ENV_FILE"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_url(settings_dict: Mapping[str, object]) -> str:
    """A DATABASE_URL for Django's connection settings (e.g. pytest-django's test database)."""
    user = quote(str(settings_dict.get("USER") or ""))
    password = settings_dict.get("PASSWORD")
    auth = f"{user}:{quote(str(password))}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{quote(str(settings_dict['NAME']))}"


def app_env(
    *,
    database_url: str,
    redis_url: str = "",
    prefix: str,
    secret_key: str,
    **extra: str,
) -> dict[str, str]:
    """The environment of a production-like server process of this app (DEBUG off, over
    loopback HTTP, so no HTTPS redirect and no secure-only cookies)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "PYTEST_", "OPENAI_", "LLM_", "CHAT_", "PROMETHEUS_"))
        and k not in INHERITED_NOT
    }
    env.update(
        {
            # Settings from the environment below, never from a developer's .env.
            "ENV_FILE": "",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONPATH": os.pathsep.join([str(SERVER_DIR), str(REPO_DIR)]),
            "SECRET_KEY": secret_key,
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CHANNEL_PREFIX": prefix,
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


def provider_env(upstream: Any, **extra: str) -> dict[str, str]:
    """Settings that point a server at a local OpenAI-compatible `upstream` (anything with
    `api_key` and `base_url`), without retries."""
    return {
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": upstream.api_key,
        "OPENAI_BASE_URL": upstream.base_url,
        "LLM_MODEL": "gpt-4o-mini",
        "LLM_MAX_RETRIES": "0",
        **extra,
    }


@dataclass
class ServerProcess:
    """One server process listening on 127.0.0.1:`port`."""

    env: dict[str, str]
    app: str = "config.asgi:application"
    kind: str = "uvicorn"  # "daphne", or "module": `python -m <app> <port>`
    ws: str | None = None  # uvicorn's --ws implementation; None: its default
    args: list[str] = field(default_factory=list)  # more server options
    # The app's start-up and shutdown hooks (`make serve` runs them): off for a server a test
    # controls step by step, on for one that should behave as in production.
    lifespan: bool = False
    port: int = field(default_factory=free_port)
    cwd: Path = SERVER_DIR
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        if self.kind == "module":
            return [sys.executable, "-m", self.app, str(self.port)]
        if self.kind == "daphne":
            return [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                *self.args,
                self.app,
            ]
        cmd = [sys.executable, "-m", "uvicorn", self.app, "--host", "127.0.0.1"]
        # One worker, said explicitly: uvicorn would otherwise take WEB_CONCURRENCY from the
        # environment, and a process of several workers is not the one process a test aims at.
        cmd += ["--port", str(self.port), "--workers", "1", *UVICORN_FLAGS]
        cmd += ["--lifespan", "on" if self.lifespan else "off"]
        if self.ws:
            cmd += ["--ws", self.ws]
        return cmd + self.args

    def start(self, timeout: float = 30) -> ServerProcess:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            self.command(),
            cwd=self.cwd,
            env=self.env,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
            start_new_session=True,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """The port accepts connections (uvicorn and daphne import the app before binding)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}{self._tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"{self.kind} did not listen on {self.port} in {timeout} s{self._tail()}"
        )

    def _tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n" + self.log_path.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL: the process dies at once, holding whatever it held."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stop(self, timeout: float = 10) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def cpu_seconds(self) -> float:
        """User + system CPU time so far, from /proc/<pid>/stat."""
        with open(f"/proc/{self.pid}/stat") as f:
            # The command name may contain spaces; fields resume after its closing parenthesis.
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
