"""One server process per in-memory channel layer (core.serving), and settings that read
`.env` without exporting it.

The servers here are real uvicorn processes on a SQLite file and no Redis, the configuration
in which a second process used to split every room in silence.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from core import serving
from core.lifespan import StartupRefused

SERVER_DIR = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "PYTEST")) and k != "WEB_CONCURRENCY"
    }
    env.update(
        ENV_FILE="",
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        REDIS_URL="",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _uvicorn(tmp_path: Path, port: int, *args: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "on",
            *args,
        ],
        cwd=SERVER_DIR,
        env=_env(tmp_path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the first server did not answer within 30 s")


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=SERVER_DIR,
        env=_env(tmp_path),
        check=True,
        capture_output=True,
        timeout=120,
    )
    return tmp_path


def test_a_second_process_on_the_same_sqlite_file_refuses_to_start(migrated: Path) -> None:
    first_port, second_port = _free_port(), _free_port()
    first = _uvicorn(migrated, first_port)
    try:
        _wait_healthy(first_port, first)
        second = _uvicorn(migrated, second_port)
        out, _ = second.communicate(timeout=60)
        text = out.decode()
        assert second.returncode != 0
        assert "REDIS_URL" in text
        assert "single worker" in text
        assert first.poll() is None  # the process already serving goes on
    finally:
        first.terminate()
        first.wait(timeout=20)


def test_several_workers_without_redis_stop_the_whole_server(migrated: Path) -> None:
    # WEB_CONCURRENCY, as a .env meant for the container once left it in the environment.
    # uvicorn's parent process stops when a worker fails to start (it exits 0 all the same):
    # communicate() returning at all is the server having stopped by itself.
    server = _uvicorn(migrated, _free_port(), WEB_CONCURRENCY="2")
    try:
        out, _ = server.communicate(timeout=90)
    finally:
        if server.poll() is None:
            server.kill()
    text = out.decode()
    assert "failed to start, stopping the parent process" in text
    assert "Started parent process" in text  # uvicorn did take two workers from the variable
    assert "REDIS_URL" in text
    assert "single worker" in text


def test_the_claim_is_released_when_its_process_ends(migrated: Path) -> None:
    port = _free_port()
    first = _uvicorn(migrated, port)
    _wait_healthy(port, first)
    first.kill()
    first.wait(timeout=20)
    second = _uvicorn(migrated, port)
    try:
        _wait_healthy(port, second)
    finally:
        second.terminate()
        second.wait(timeout=20)


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
    env = _env(tmp_path, ENV_FILE=str(env_file), LLM_HISTORY_LIMIT="3")
    env.pop("LLM_MODEL", None)
    env["PROMETHEUS_MULTIPROC_DIR"] = ""  # empty in the real environment too: still off
    out = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", script],
        cwd=SERVER_DIR,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    import json

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
