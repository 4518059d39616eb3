"""`manage.py llm_check`: one real call to the configured provider, and an exit status that
says what is wrong (SPEC 7.1)."""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from llm.providers import get_provider, model_name, provider_name

EXIT_CODES = {
    "ok": 0,
    "not_configured": 1,
    "bad_key": 2,
    "unknown_model": 3,
    "unreachable": 4,
    "rate_limited": 5,
    "error": 5,
}


class Command(BaseCommand):
    help = (
        "Make one small real call to the configured AI provider and report whether the key "
        "works, the model exists and the server is reachable. Exit status: 0 ok, "
        "1 not configured, 2 bad key, 3 unknown model, 4 server unreachable, 5 other error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", help="Model to try (default: LLM_MODEL).")

    def handle(self, *args: Any, **options: Any) -> None:
        provider = get_provider()
        if provider is None:
            self.stderr.write(
                "Not configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for an "
                "OpenAI-compatible server), or LLM_PROVIDER=echo."
            )
            raise SystemExit(EXIT_CODES["not_configured"])
        model = options["model"] or model_name()
        where = settings.OPENAI_BASE_URL or "https://api.openai.com/v1"
        self.stdout.write(f"Provider: {provider_name()}  model: {model}  server: {where}")
        try:
            result = asyncio.run(provider.check(model))
        except Exception as exc:  # the check maps known failures; anything else is reported
            raise CommandError(f"Unexpected failure: {type(exc).__name__}") from exc
        if result.ok:
            self.stdout.write(self.style.SUCCESS(f"OK: {result.detail}"))
            return
        self.stderr.write(self.style.ERROR(f"{result.code}: {result.detail}"))
        raise SystemExit(EXIT_CODES.get(result.code, 5))
