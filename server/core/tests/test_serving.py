"""One server process per in-memory channel layer (core.serving), and settings that read
`.env` without exporting it.

The servers here are real uvicorn processes on a SQLite file and no Redis, the configuration
in which a second process used to split every room in silence.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from core import serving
from core.lifespan import StartupRefused
from testkit.servers import SERVER_DIR, ServerProcess, app_env, manage

SECRET_KEY = "serving-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def _env(workdir: Path, **extra: str) -> dict[str, str]:
    """As `make run` serves: DEBUG on, SQLite, no Redis."""
    return app_env(
        database_url=f"sqlite:///{workdir / 'db.sqlite3'}",
        prefix="serving",
        secret_key=SECRET_KEY,
        debug=True,
        **extra,
    )


def _server(workdir: Path, name: str, **env: str) -> ServerProcess:
    """uvicorn on the SQLite file in `workdir`, with the start-up hooks (where the claim is
    taken), ready once /healthz answers."""
    return ServerProcess(
        env=_env(workdir, **env),
        lifespan=True,
        ready_path="/healthz",
        log_path=workdir / f"{name}.log",
    )


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    manage(_env(tmp_path), "migrate", "--noinput")
    return tmp_path


def test_a_second_process_on_the_same_sqlite_file_refuses_to_start(migrated: Path) -> None:
    with _server(migrated, "first").start() as first, _server(migrated, "second") as second:
        assert second.launch().wait_exit(60) != 0
        text = second.log_text()
        assert "REDIS_URL" in text
        assert "single worker" in text
        assert first.proc is not None
        assert first.proc.poll() is None  # the process already serving goes on


def test_several_workers_without_redis_stop_the_whole_server(migrated: Path) -> None:
    # WEB_CONCURRENCY, as a .env meant for the container once left it in the environment, and
    # no --workers: the count is uvicorn's to take from the variable.
    server = _server(migrated, "server", WEB_CONCURRENCY="2")
    server.workers = None
    # uvicorn's parent process stops when a worker fails to start (it exits 0 all the same):
    # its exit at all is the server having stopped by itself.
    with server.launch():
        server.wait_exit(90)
    text = server.log_text()
    assert "failed to start, stopping the parent process" in text
    assert "Started parent process" in text  # uvicorn did take two workers from the variable
    assert "REDIS_URL" in text
    assert "single worker" in text


def test_the_claim_is_released_when_its_process_ends(migrated: Path) -> None:
    first = _server(migrated, "first").start()
    first.kill()
    first.stop()
    second = _server(migrated, "second")
    second.port = first.port
    second.start()  # raises unless it serves: the killed process's claim went with it
    second.stop()


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_the_claim_is_taken_once_per_process(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(serving, "_holder", None)
    database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "x.sqlite3")}
    with override_settings(REDIS_URL="", DATABASES={"default": database}):
        serving.claim()
        held = serving._holder
        serving.claim()  # the same process again: nothing changes
        assert serving._holder is held
        monkeypatch.setattr(serving, "_holder", None)  # as if another process
        with pytest.raises(serving.SeveralProcesses):
            serving.claim()
    held.close()


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_nothing_is_claimed_on_redis(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(serving, "_holder", None)
    database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "x.sqlite3")}
    with override_settings(REDIS_URL="redis://127.0.0.1:6379/0", DATABASES={"default": database}):
        serving.claim()
    assert serving._holder is None
    assert not (tmp_path / "x.sqlite3.serving").exists()


async def test_a_refused_claim_fails_the_start_up(monkeypatch) -> None:
    from core import lifespan

    async def refuse() -> None:
        raise StartupRefused("no")

    ran: list[str] = []

    async def later() -> None:
        ran.append("later")

    monkeypatch.setattr(lifespan, "on_startup", [refuse, later])
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await lifespan.app({"type": "lifespan"}, receive, send)  # type: ignore[arg-type]
    assert sent == [{"type": "lifespan.startup.failed", "message": "no"}]
    assert ran == []


@pytest.mark.parametrize(
    ("workers", "redis", "fails"), [(2, "", True), (1, "", False), (2, "redis://r", False)]
)
def test_check_workers(workers: int, redis: str, fails: bool) -> None:
    with override_settings(REDIS_URL=redis):
        if fails:
            with pytest.raises(CommandError, match="REDIS_URL"):
                call_command("check_workers", workers=workers)
        else:
            call_command("check_workers", workers=workers)


def test_settings_read_the_env_file_without_exporting_it(tmp_path: Path) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text(
        "WEB_CONCURRENCY=2\nLLM_MODEL=from-the-file\nLLM_HISTORY_LIMIT=7\n"
        "PROMETHEUS_MULTIPROC_DIR=\n"
    )
    script = textwrap.dedent(
        """
        import json, os
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
        from django.conf import settings
        settings.LLM_MODEL
        import prometheus_client.values as values
        print(json.dumps({
            "model": settings.LLM_MODEL,
            "history": settings.LLM_HISTORY_LIMIT,
            "exported": [k for k in ("WEB_CONCURRENCY", "LLM_MODEL", "PROMETHEUS_MULTIPROC_DIR")
                         if k in os.environ],
            "multiprocess": values.ValueClass is not values.MutexValue,
        }))
        """
    )
    env = _env(
        tmp_path,
        ENV_FILE=str(env_file),
        LLM_HISTORY_LIMIT="3",
        PROMETHEUS_MULTIPROC_DIR="",  # empty in the real environment too: still off
    )
    out = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", script],
        cwd=SERVER_DIR,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    seen = json.loads(out)
    assert seen["model"] == "from-the-file"
    assert seen["history"] == 3  # the environment wins over the file
    assert seen["exported"] == []
    assert seen["multiprocess"] is False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgres_a_second_session_cannot_take_the_claim() -> None:
    first = serving._claim_postgres()
    try:
        with pytest.raises(serving.SeveralProcesses):
            serving._claim_postgres()  # another connection: another process, as far as PG knows
    finally:
        first.close()
    serving._claim_postgres().close()  # released with the connection that held it
