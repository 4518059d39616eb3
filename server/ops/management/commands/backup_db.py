"""`manage.py backup_db`: a consistent copy of the database in one file, while the server runs.

PostgreSQL: `pg_dump --format=custom` (restore with `pg_restore`); SQLite: SQLite's online
backup, a database file that can replace the original. The password goes to pg_dump through
its environment, never on the command line.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection


class Command(BaseCommand):
    help = (
        "Write a consistent copy of the database to a file: pg_dump's custom format for "
        "PostgreSQL, a database file for SQLite."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output",
            help="File to write (default: backups/chat-<UTC time>.dump or .sqlite3 under the "
            "repository).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        vendor = connection.vendor
        if vendor not in ("postgresql", "sqlite"):
            raise CommandError(f"No backup method for {vendor}.")
        output = Path(options["output"] or self._default_path(vendor))
        output.parent.mkdir(parents=True, exist_ok=True)
        if vendor == "postgresql":
            self._pg_dump(output)
        else:
            self._sqlite_backup(output)
        self.stdout.write(f"{output} ({output.stat().st_size} bytes)")

    def _default_path(self, vendor: str) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        suffix = "dump" if vendor == "postgresql" else "sqlite3"
        return Path(settings.REPO_DIR) / "backups" / f"chat-{stamp}.{suffix}"

    def _pg_dump(self, output: Path) -> None:
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            raise CommandError(
                "pg_dump is not installed here (Debian: apt-get install postgresql-client). "
                "With docker compose, run it in the db service instead (see README, Backups)."
            )
        db = connection.settings_dict
        env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
        for key, variable in (
            ("HOST", "PGHOST"),
            ("PORT", "PGPORT"),
            ("USER", "PGUSER"),
            ("PASSWORD", "PGPASSWORD"),
        ):
            if db.get(key):
                env[variable] = str(db[key])
        done = subprocess.run(  # noqa: S603 - pg_dump with our own arguments
            [pg_dump, "--format=custom", "--no-owner", f"--file={output}", str(db["NAME"])],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            output.unlink(missing_ok=True)
            raise CommandError(f"pg_dump failed: {done.stderr.strip()}")

    def _sqlite_backup(self, output: Path) -> None:
        if connection.in_atomic_block:
            # Copying from a connection that holds a write transaction waits for itself.
            raise CommandError("Run the SQLite backup outside a transaction.")
        connection.ensure_connection()
        source = connection.connection
        target = sqlite3.connect(output)
        try:
            source.backup(target)
        finally:
            target.close()
