"""Real server processes, for the browser, multi-process and serving tests, the benchmarks and
the soak: the app under uvicorn (as `make run` and `make serve` start it) or daphne, and the
benchmark's peers and upstream (`python -m <module>`).

Each process is one server on its own loopback port, so a test can reach "process A" and
"process B" directly, as a load balancer would, and kill one of them.

A child's environment is built here, never inherited: of this process's environment it keeps
only what any program needs (PATH, HOME, the locale, TMPDIR), then takes the settings it is
given. Nothing a developer's shell may carry reaches it (uvicorn reads WEB_CONCURRENCY as its
worker count and FORWARDED_ALLOW_IPS as its trusted proxies; DJANGO_*, OPENAI_*, LLM_* would
change the app), and ENV_FILE is empty, so the settings read no `.env` either. uvicorn is
always told its worker count: one, unless a caller asks for another.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

REPO_DIR = Path(__file__).resolve().parent.parent
SERVER_DIR = REPO_DIR / "server"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# The flags of `make serve` that matter for a socket server (UVICORN_FLAGS in the Makefile).
UVICORN_FLAGS = ["--ws-max-size", "65536", "--ws-per-message-deflate", "false", "--no-access-log"]

# All that a child takes from this process's environment: what any program needs to run, and
# the machine's choice about writing bytecode (a tree may be read-only).
INHERITED = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "LD_LIBRARY_PATH",
        "PYTHONDONTWRITEBYTECODE",
    }
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**settings: str) -> dict[str, str]:
    """The environment of a child process: the basics of this one's, no `.env`, the app's
    packages importable, and `settings`."""
    env = {k: v for k, v in os.environ.items() if k in INHERITED or k.startswith("LC_")}
    env.update(
        ENV_FILE="",
        PYTHONPATH=os.pathsep.join([str(SERVER_DIR), str(REPO_DIR)]),
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


def app_env(
    *,
    database_url: str,
    redis_url: str = "",
    prefix: str,
    secret_key: str,
    debug: bool = False,
    **extra: str,
) -> dict[str, str]:
    """The environment of a server process of this app over loopback HTTP (so no HTTPS
    redirect and no secure-only cookies); every setting not given has its default."""
    settings = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": secret_key,
        "DEBUG": "true" if debug else "false",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CHANNEL_PREFIX": prefix,
        "LOG_LEVEL": "WARNING",
    }
    return child_env(**{**settings, **extra})


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


def postgres_url(settings_dict: Mapping[str, object]) -> str:
    """A DATABASE_URL for Django's connection settings (e.g. pytest-django's test database)."""
    user = quote(str(settings_dict.get("USER") or ""))
    password = settings_dict.get("PASSWORD")
    auth = f"{user}:{quote(str(password))}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{quote(str(settings_dict['NAME']))}"


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run `manage.py <args>` with `env`; its output. A failure raises with the output."""
    done = subprocess.run(  # noqa: S603 - this interpreter, our own arguments
        [sys.executable, "manage.py", *args],
        cwd=SERVER_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} exited {done.returncode}:\n{done.stdout}")
    return done.stdout


@dataclass
class ServerProcess:
    """One server process listening on 127.0.0.1:`port`."""

    env: dict[str, str]
    app: str = "config.asgi:application"
    kind: str = "uvicorn"  # "daphne"; or "module": `python -m <app> --port <port> <args>`
    ws: str | None = None  # uvicorn's --ws implementation; None: its default
    args: list[str] = field(default_factory=list)  # more server options
    # The app's start-up and shutdown hooks (`make serve` runs them): off for a server a test
    # controls step by step, on for one that should behave as in production.
    lifespan: bool = False
    # uvicorn's --workers. None leaves the count to uvicorn, which then reads WEB_CONCURRENCY:
    # only for a test of that very case.
    workers: int | None = 1
    # Ready when this path answers 200; None: when the port accepts connections (uvicorn and
    # daphne import the app, and uvicorn runs the start-up hooks, before they listen).
    ready_path: str | None = None
    port: int = field(default_factory=free_port)
    cwd: Path = SERVER_DIR
    log_path: Path | None = None  # stdout and stderr; None: discarded
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
            return [sys.executable, "-m", self.app, "--port", str(self.port), *self.args]
        if self.kind == "daphne":
            daphne = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
            return [*daphne, *self.args, self.app]
        cmd = [sys.executable, "-m", "uvicorn", self.app, "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), *UVICORN_FLAGS]
        if self.workers is not None:
            cmd += ["--workers", str(self.workers)]
        cmd += ["--lifespan", "on" if self.lifespan else "off"]
        if self.ws:
            cmd += ["--ws", self.ws]
        return cmd + self.args

    def launch(self) -> ServerProcess:
        """Start the process without waiting for it to serve."""
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
        return self

    def start(self, timeout: float = 30) -> ServerProcess:
        self.launch()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} exited with {self.proc.returncode}\n{self.log_tail()}"
                )
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"{self.kind} did not serve on {self.port} in {timeout} s\n{self.log_tail()}"
        )

    def _answers(self) -> bool:
        if self.ready_path is None:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return True
            return False
        try:
            with urllib.request.urlopen(self.base_url + self.ready_path, timeout=2) as answer:  # noqa: S310 - a loopback URL of our own
                return bool(answer.status == 200)
        except OSError:
            return False

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end by itself; its exit code."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        self._close_log()
        return code

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

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
        self._close_log()

    def _close_log(self) -> None:
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
