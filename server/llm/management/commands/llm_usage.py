"""`manage.py llm_usage`: the usage table of `GET /api/llm/usage/`, for operators, with the
same figures (`llm.selectors.Totals.figures`)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from llm import selectors


def _date(value: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"Not a date (YYYY-MM-DD): {value!r}") from exc
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError as exc:
        raise CommandError(f"Not an id: {value!r}") from exc


COLUMNS = [
    ("requests", "requests"),
    ("prompt_tokens", "prompt"),
    ("completion_tokens", "completion"),
    ("total_tokens", "total"),
    ("cost_usd", "cost_usd"),
    ("estimated_tokens", "est_tokens"),
    ("estimated_cost_usd", "est_cost_usd"),
]


class Command(BaseCommand):
    help = (
        "Tokens and cost of AI replies by user, room, session, model or day (default: this "
        "month, by user), the same figures as GET /api/llm/usage/ for the same filters."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since", type=_date, help="First day, YYYY-MM-DD (default: the 1st of this month)."
        )
        parser.add_argument(
            "--until", type=_date, help="Day after the last, YYYY-MM-DD (default: now)."
        )
        parser.add_argument("--group-by", choices=sorted(selectors.GROUP_KEYS), default="user")
        parser.add_argument("--user", help="Only this user's calls (a username).")
        parser.add_argument("--room", type=_uuid, help="Only calls made in this room (its id).")
        parser.add_argument("--session", type=_uuid, help="Only calls of this AI session.")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        since = options["since"] or now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        until = options["until"] or now
        rows = selectors.usage_rows(
            user=None,
            since=since,
            until=until,
            room_id=options["room"],
            session_id=options["session"],
        )
        if options["user"]:
            rows = rows.filter(user__username=options["user"])
        groups = selectors.usage_groups(rows, group_by=options["group_by"])
        total = selectors.usage_totals(rows).figures()
        header = (options["group_by"], *(name for _, name in COLUMNS))
        shown = [(g.label, g.totals.figures()) for g in groups]
        lines = [(label, *(figures[field] for field, _ in COLUMNS)) for label, figures in shown]
        lines.append(("TOTAL", *(total[field] for field, _ in COLUMNS)))
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
        if total["estimated_requests"]:
            self.stdout.write(
                f"{total['estimated_requests']} request(s) ended without usage from the provider "
                f"(stopped, failed, or no usage sent): their {total['estimated_tokens']} tokens "
                f"and ${total['estimated_cost_usd']} are estimates, counted in the totals."
            )
        if total["unpriced_requests"]:
            self.stdout.write(
                f"{total['unpriced_requests']} request(s) of a model with no price (LLM_PRICES): "
                "their cost is unknown and not in cost_usd."
            )
