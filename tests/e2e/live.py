"""The live server of the browser tests: the app under uvicorn in a subprocess, as `make run`
starts it (one process, the in-memory channel layer), on a fresh SQLite database, with the
local OpenAI-compatible upstream as its provider."""

from __future__ import annotations

from pathlib import Path

from testkit.servers import ServerProcess, app_env, manage, provider_env
from testkit.upstream import FakeUpstream

STAFF_USERNAME = "staffer"
PASSWORD = "Correct-Horse-42"
# Per user: low enough that a test can reach it in a few messages, high enough that no other
# test (each uses fresh users) does.
LLM_USER_RATE = "4/minute"


def start_live_server(workdir: Path, upstream: FakeUpstream) -> ServerProcess:
    """Migrate a new database in `workdir`, add the staff account, and serve it."""
    env = app_env(
        database_url=f"sqlite:///{workdir / 'db.sqlite3'}",
        prefix="e2e",
        secret_key="e2e-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        debug=True,
        **provider_env(upstream, LLM_TIMEOUT_SECONDS="10", LLM_MODELS="gpt-4o-mini,gpt-4o"),
        LLM_USER_RATE=LLM_USER_RATE,
        CHAT_USER_RATE="60/minute",
        # Every person of every test signs up from this one address.
        SIGNUP_RATE_PER_ADDRESS="1000/hour",
    )
    manage(env, "migrate", "--noinput")
    manage(
        {**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
        *("createsuperuser", "--noinput", "--username", STAFF_USERNAME),
        *("--email", "staff@example.com"),
    )
    server = ServerProcess(env=env, log_path=workdir / "server.log", ready_path="/healthz")
    return server.start()
