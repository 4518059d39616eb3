"""`manage.py check_workers --workers N`: refuse N server processes on the in-memory layer.

`make serve` and `deploy/container.sh start` run it before uvicorn, so that a configuration
that would split every room (several workers, no REDIS_URL) stops with the fix instead of
starting. The processes themselves check again as they start (core.serving).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Fail when several worker processes would run on the in-memory channel layer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workers", type=int, required=True, help="worker processes")

    def handle(self, *args: Any, **options: Any) -> None:
        workers: int = options["workers"]
        if workers < 1:
            raise CommandError("--workers must be 1 or more.")
        if workers > 1 and not settings.REDIS_URL:
            raise CommandError(
                f"{workers} worker processes need a shared channel layer, and REDIS_URL is not "
                "set: each process would reach only its own sockets and rooms would split in "
                "silence. Set REDIS_URL (in .env or the environment), or run one worker "
                "(WORKERS=1)."
            )
        self.stdout.write(
            f"{workers} worker process(es) on "
            f"{'Redis' if settings.REDIS_URL else 'the in-memory channel layer'}: ok"
        )
