"""What makes two usernames the same name, or too alike to tell apart.

- `username_normalised`: the form a name is stored and shown in (NFKC, no surrounding spaces),
  so that full-width "ｄａｎａ" is "dana".
- `username_key`: the normalised name case-folded. Sign-in looks accounts up by it and the
  throttles count by it, on every database alike: the database's own case-insensitive match
  differs between vendors (PostgreSQL's UPPER('ı') is 'I', SQLite folds ASCII only), and a
  spelling that matched an account without being its key would both sign in as it and have a
  throttle of its own.
- `username_skeleton`: ICU's implementation of the confusable skeleton of Unicode TR39, so that
  "AI_Assіstant" (Cyrillic і) or "a1ice" cannot be registered beside "AI_Assistant" or
  "alice". Taken on the case-preserving name first, because case-folding would hide the
  capital I that looks like an l; then case-folded and taken again, so that names differing
  only in case or in what folding produces land on one skeleton.
"""

from __future__ import annotations

import unicodedata
from functools import cache

import icu


def username_normalised(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw).strip()


def username_key(raw: str) -> str:
    return username_normalised(raw).casefold()


@cache
def _spoof_checker() -> icu.SpoofChecker:
    # Building one loads ICU's confusable data; it is immutable afterwards and safe to share
    # between threads.
    return icu.SpoofChecker()


def _skeleton(text: str) -> str:
    return str(_spoof_checker().getSkeleton(0, text))


def username_skeleton(raw: str) -> str:
    return _skeleton(_skeleton(username_normalised(raw)).casefold())
