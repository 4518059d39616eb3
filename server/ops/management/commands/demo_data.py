"""`manage.py demo_data`: a few users, a room and messages, for a first look."""

from __future__ import annotations

import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ValidationFailed
from ops.services import demo_data_ensure


class Command(BaseCommand):
    help = (
        "Create demo users (demo_alice, demo_bob, demo_carol), a room they share and a few "
        "messages. Safe to run again: nothing is duplicated, the users get the new password."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password",
            help="Password of the demo users (default: a new random one, printed).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["password"] or secrets.token_urlsafe(12)
        try:
            demo = demo_data_ensure(password=password)
        except ValidationFailed as exc:
            raise CommandError(exc.message) from exc
        names = ", ".join(user.username for user in demo.users)
        self.stdout.write(f"Users:    {names}")
        self.stdout.write(f"Password: {password}")
        self.stdout.write(f"Room:     {demo.room.name} ({demo.room.pk})")
        self.stdout.write(f"Messages: {demo.messages_created} new")
        self.stdout.write(self.style.SUCCESS("Sign in as any of them at /api/auth/login/."))
