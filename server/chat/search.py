"""Search of the messages a user may read (SPEC 9.4): room chat and AI sessions of the user's
rooms, the assistant's replies included, newest first, with the matched parts marked.

A query matches any substring, case-insensitively, Korean and English alike (no word
splitting, which Korean text does not fit). On PostgreSQL the match is `content ILIKE
'%query%'`, which the trigram index of migration chat 0004 (`pg_trgm`, GIN) serves for queries
of three characters or more; a two-character query has no trigram and is answered from the
messages of the user's rooms, found by their room index. On SQLite it is a plain scan of those
messages (`LIKE`, case-insensitive for ASCII only). README, "Search", says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db.models import F, Lookup, Value
from django.db.models.sql.compiler import SQLCompiler

from accounts.models import User
from chat.access import access_room
from chat.models import Message
from chat.selectors import room_ids_of
from core.errors import text_field

QUERY_MIN_CHARS = 2
QUERY_MAX_CHARS = 200
PAGE_DEFAULT = 20
PAGE_MAX = 50


class ContainsSubstring(Lookup):  # type: ignore[type-arg]
    """`lhs` contains the pattern `rhs`, ignoring case: ILIKE on PostgreSQL (the operator the
    trigram index serves; Django's icontains compares UPPER() of both sides, which it does
    not), LIKE with an explicit escape character elsewhere."""

    lookup_name = "contains_substring"

    def as_sql(self, compiler: SQLCompiler, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        if connection.vendor == "postgresql":
            return f"{lhs} ILIKE {rhs}", [*lhs_params, *rhs_params]
        return f"{lhs} LIKE {rhs} ESCAPE '\\'", [*lhs_params, *rhs_params]


def like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class Hit:
    message: Message
    # The message's text cut into runs, each marked whether it matched the query.
    parts: list[tuple[str, bool]]


@dataclass(frozen=True)
class SearchPage:
    hits: list[Hit]
    has_more: bool


def marked_parts(text: str, query: str) -> list[tuple[str, bool]]:
    """`text` as runs of (text, matched), every case-insensitive occurrence of `query` marked."""
    parts: list[tuple[str, bool]] = []
    at = 0
    for found in re.finditer(re.escape(query), text, re.IGNORECASE):
        if found.start() > at:
            parts.append((text[at : found.start()], False))
        parts.append((found.group(), True))
        at = found.end()
    if at < len(text) or not parts:
        parts.append((text[at:], False))
    return parts


def query_clean(q: str) -> str:
    return text_field(q, field="q", at_most=QUERY_MAX_CHARS, at_least=QUERY_MIN_CHARS)


def message_search(
    *,
    user: User,
    q: str,
    room_id: UUID | None = None,
    before: int | None = None,
    limit: int | None = None,
) -> SearchPage:
    """The messages of `user`'s rooms (or of the one room `room_id`, NotFound if not theirs)
    that contain `q`, newest first; `before` pages on from a message id."""
    query = query_clean(q)
    size = min(max(limit or PAGE_DEFAULT, 1), PAGE_MAX)
    if room_id is not None:
        rooms = [access_room(room_id=room_id, user=user).pk]
    else:
        # The ids themselves, not a subquery: the planner then weighs the room index against
        # the trigram index knowing how many rooms there are.
        rooms = room_ids_of(user_id=user.pk)
    if not rooms:
        return SearchPage([], False)
    qs = Message.objects.filter(room_id__in=rooms, deleted_at__isnull=True).filter(
        ContainsSubstring(F("content"), Value(like_pattern(query)))
    )
    if before is not None:
        qs = qs.filter(id__lt=before)
    rows = list(qs.select_related("sender", "room").order_by("-id")[: size + 1])
    hits = [Hit(m, marked_parts(m.content, query)) for m in rows[:size]]
    return SearchPage(hits, len(rows) > size)
