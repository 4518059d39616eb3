"""Operator commands: demo_data, migrate_locked, and `check --deploy` on production settings."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import User
from chat.models import ChatRoom, Message
from ops.management.commands.migrate_locked import MIGRATION_LOCK_ID
from ops.services import DEMO_MESSAGES, DEMO_ROOM_NAME, DEMO_USERNAMES

SERVER_DIR = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_demo_data_creates_users_a_room_and_messages_once():
    first = run("demo_data", "--password", "Demo-Password-1")
    second = run("demo_data", "--password", "Demo-Password-2")
    assert "Password: Demo-Password-1" in first
    assert f"Messages: {len(DEMO_MESSAGES)} new" in first
    assert "Messages: 0 new" in second
    assert User.objects.filter(username__in=DEMO_USERNAMES).count() == 3
    room = ChatRoom.objects.get(name=DEMO_ROOM_NAME)
    assert room.owner.username == DEMO_USERNAMES[0]
    assert sorted(u.username for u in room.participants.all()) == list(DEMO_USERNAMES[1:])
    assert Message.objects.filter(room=room).count() == len(DEMO_MESSAGES)
    # The password printed last is the one that works.
    assert authenticate(username="demo_bob", password="Demo-Password-2") is not None
    assert authenticate(username="demo_bob", password="Demo-Password-1") is None


@pytest.mark.django_db
def test_demo_data_prints_a_fresh_random_password_by_default():
    out = run("demo_data")
    password = next(line for line in out.splitlines() if line.startswith("Password:")).split()[1]
    assert len(password) >= 16
    assert authenticate(username="demo_carol", password=password) is not None


@pytest.mark.django_db
def test_demo_data_refuses_a_weak_password():
    with pytest.raises(CommandError, match="password"):
        run("demo_data", "--password", "1234")
    assert not User.objects.filter(username__in=DEMO_USERNAMES).exists()


@pytest.mark.django_db
def test_migrate_locked_applies_migrations():
    out = run("migrate_locked")
    assert "No migrations to apply." in out


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_migrate_locked_waits_for_a_replica_that_is_migrating():
    import psycopg

    params = connection.get_connection_params()
    other = psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})
    other.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
    done = threading.Event()

    def migrate() -> None:
        try:
            run("migrate_locked")
        finally:
            from django.db import connections

            connections.close_all()
            done.set()

    thread = threading.Thread(target=migrate)
    thread.start()
    try:
        assert not done.wait(1.0), "migrate_locked did not wait for the lock"
    finally:
        other.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])
        other.close()
    assert done.wait(15), "migrate_locked did not go on once the lock was free"
    thread.join()


def test_check_deploy_has_no_warnings_on_production_settings():
    """SPEC 6: with DEBUG off and production values, `check --deploy` is silent."""
    production = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "chat.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
        "SECURE_PROXY_SSL_HEADER": "true",
        "OPENAI_API_KEY": "sk-" + secrets.token_urlsafe(32).replace("-", "a"),
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "LOG_FORMAT": "json",
        "PYTHONPATH": str(SERVER_DIR),
    }
    # Empty values stand for the defaults and keep a developer's .env out of the run.
    neutral = dict.fromkeys(
        [
            "DATABASE_URL",
            "REDIS_URL",
            "CORS_ALLOWED_ORIGINS",
            "OPENAI_BASE_URL",
            "LLM_PROVIDER",
            "LLM_MODEL",
            "SESSION_COOKIE_SECURE",
            "CSRF_COOKIE_SECURE",
            "SECURE_SSL_REDIRECT",
            "SECURE_HSTS_SECONDS",
            "SECURE_HSTS_INCLUDE_SUBDOMAINS",
            "SECURE_HSTS_PRELOAD",
            "SILENCED_SYSTEM_CHECKS",
            "PROMETHEUS_MULTIPROC_DIR",
        ],
        "",
    )
    env = {**os.environ, **neutral, **production}
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=SERVER_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout
    assert production["SECRET_KEY"] not in done.stdout + done.stderr


@pytest.mark.django_db(transaction=True)
def test_backup_db_copies_the_sqlite_database(tmp_path, alice):
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite backup; PostgreSQL's is the next test")
    import sqlite3

    out = run("backup_db", "--output", str(tmp_path / "copy.sqlite3"))
    assert "copy.sqlite3" in out
    copy = sqlite3.connect(tmp_path / "copy.sqlite3")
    try:
        names = [row[0] for row in copy.execute("SELECT username FROM accounts_user")]
    finally:
        copy.close()
    assert names == ["alice"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_backup_db_runs_pg_dump(tmp_path, alice):
    import shutil

    pg_restore = shutil.which("pg_restore")
    if pg_restore is None:
        pytest.fail("pg_dump/pg_restore are needed on a PostgreSQL run")
    target = tmp_path / "chat.dump"
    run("backup_db", "--output", str(target))
    assert target.read_bytes()[:5] == b"PGDMP"
    listing = subprocess.run(  # noqa: S603 - fixed arguments
        [pg_restore, "--list", str(target)], capture_output=True, text=True, check=True
    ).stdout
    assert "TABLE DATA public accounts_user" in listing
