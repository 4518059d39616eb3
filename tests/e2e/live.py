"""The live server of the browser tests: uvicorn in a subprocess, as `make run` starts it,
on a free port, with a fresh SQLite database and the fake OpenAI upstream."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVER_DIR = REPO / "server"
STAFF_USERNAME = "staffer"
PASSWORD = "Correct-Horse-42"
# Per user: low enough that a test can reach it in a few messages, high enough that no other
# test (each uses fresh users) does.
LLM_USER_RATE = "4/minute"
# uvicorn reads WEB_CONCURRENCY as its worker count; a developer's shell may carry it.
INHERITED_NOT = frozenset({"WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    def __init__(self, workdir: Path, upstream_url: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("DJANGO_", "PYTEST")) and k not in INHERITED_NOT
            },
            "ENV_FILE": "",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "1",
            "SECRET_KEY": "e2e-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
            "REDIS_URL": "",
            "CHANNEL_PREFIX": "e2e",
            "CORS_ALLOWED_ORIGINS": "",
            "CSRF_TRUSTED_ORIGINS": "",
            "OPENAI_API_KEY": "sk-e2e-test-key-0123456789abcdefghijklmnop",
            "OPENAI_BASE_URL": upstream_url,
            "LLM_PROVIDER": "openai",
            "LLM_MODEL": "gpt-4o-mini",
            "LLM_MODELS": "gpt-4o-mini,gpt-4o",
            "LLM_SYSTEM_PROMPT": "",
            "LLM_MAX_RETRIES": "0",
            "LLM_TIMEOUT_SECONDS": "10",
            "LLM_USER_RATE": LLM_USER_RATE,
            "CHAT_USER_RATE": "60/minute",
            # Every person of every test signs up from this one address.
            "SIGNUP_RATE_PER_ADDRESS": "1000/hour",
            "LLM_USER_DAILY_TOKEN_BUDGET": "0",
            "LLM_MONTHLY_COST_BUDGET_USD": "0",
            "LLM_PRICES": "",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def manage(self, *args: str, **env: str) -> None:
        subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "manage.py", *args],
            cwd=SERVER_DIR,
            env={**self.env, **env},
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> LiveServer:
        self.manage("migrate", "--noinput")
        self.manage(
            "createsuperuser",
            "--noinput",
            "--username",
            STAFF_USERNAME,
            "--email",
            "staff@example.com",
            DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        )
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                # One process: the in-memory channel layer reaches only its own sockets.
                "--workers",
                "1",
                "--ws-max-size",
                "65536",
                "--lifespan",
                "off",
                "--no-access-log",
            ],
            cwd=SERVER_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/login/", timeout=2) as answer:  # noqa: S310 - a local URL
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within 30 s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
