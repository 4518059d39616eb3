"""`manage.py llm_usage`: the usage table of `GET /api/llm/usage/`, for operators."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from llm import selectors


def _date(value: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"Not a date (YYYY-MM-DD): {value!r}") from exc
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


class Command(BaseCommand):
    help = (
        "Tokens and cost of AI replies by user, room, model or day (default: this month, by user)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since", type=_date, help="First day, YYYY-MM-DD (default: the 1st of this month)."
        )
        parser.add_argument(
            "--until", type=_date, help="Day after the last, YYYY-MM-DD (default: now)."
        )
        parser.add_argument("--group-by", choices=sorted(selectors.GROUP_KEYS), default="user")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        since = options["since"] or now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        until = options["until"] or now
        rows = selectors.usage_rows(user=None, since=since, until=until)
        groups = selectors.usage_groups(rows, group_by=options["group_by"])
        total = selectors.usage_totals(rows)
        header = (
            options["group_by"],
            "requests",
            "prompt",
            "completion",
            "total",
            "cost_usd",
            "unknown",
        )
        lines = [
            (
                g.label,
                g.totals.requests,
                g.totals.prompt_tokens,
                g.totals.completion_tokens,
                g.totals.total_tokens,
                g.totals.cost_usd,
                g.totals.unknown_usage_requests,
            )
            for g in groups
        ]
        lines.append(
            (
                "TOTAL",
                total.requests,
                total.prompt_tokens,
                total.completion_tokens,
                total.total_tokens,
                total.cost_usd,
                total.unknown_usage_requests,
            )
        )
        table = [tuple(str(c) for c in header), *[tuple(str(c) for c in line) for line in lines]]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        self.stdout.write(f"AI usage from {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC")
        for i, row in enumerate(table):
            cells = [row[0].ljust(widths[0])] + [
                c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
            ]
            self.stdout.write("  ".join(cells))
            if i == 0:
                self.stdout.write("  ".join("-" * w for w in widths))
        if total.unknown_usage_requests:
            self.stdout.write(
                f"{total.unknown_usage_requests} request(s) ended without usage from the provider: "
                "their tokens are unknown and not counted above."
            )
