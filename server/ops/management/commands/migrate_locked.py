"""`manage.py migrate_locked`: `migrate`, one process at a time.

Several `web` replicas start together and each applies migrations on start; two running the
same migration at once would fail (or worse). On PostgreSQL a session advisory lock makes them
take turns: the first applies, the others then find nothing left to do.
"""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection

# Any fixed number: it names the lock among this database's advisory locks.
MIGRATION_LOCK_ID = 0x636861745F6D6967  # "chat_mig"


class Command(BaseCommand):
    help = "Apply migrations, waiting for any other server that is applying them (PostgreSQL)."

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        if connection.vendor != "postgresql":
            call_command("migrate", interactive=False, verbosity=verbosity, stdout=self.stdout)
            return
        with connection.cursor() as cursor:
            if verbosity:
                self.stdout.write("Waiting for the migration lock...")
            cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
            try:
                call_command("migrate", interactive=False, verbosity=verbosity, stdout=self.stdout)
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])
