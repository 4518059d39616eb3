"""What makes two usernames the same name, or too alike to tell apart.

- `username_normalised`: the form a name is stored and shown in (NFKC, no surrounding spaces),
  so that full-width "ｄａｎａ" is "dana".
- `username_key`: the normalised name case-folded. Sign-in looks accounts up by it and the
  throttles count by it, on every database alike: the database's own case-insensitive match
  differs between vendors (PostgreSQL's UPPER('ı') is 'I', SQLite folds ASCII only), and a
  spelling that matched an account without being its key would both sign in as it and have a
  throttle of its own.
- `username_skeleton`: the confusable skeleton of Unicode TR39, so that "AI_Assіstant"
  (Cyrillic і) or "a1ice" cannot be registered beside "AI_Assistant" or "alice". Taken on the
  case-preserving name first, because case-folding would hide the capital I that looks like an
  l; then case-folded and taken again, so that names differing only in case or in what folding
  produces land on one skeleton.

The confusable pairs are Unicode's (confusables.txt), as the `confusable_homoglyphs` package
ships them: a pure-Python wheel, so installing needs no ICU and no compiler. Its table pairs
characters both ways, so characters that can be mistaken for one another, directly or through
others, form a class, and the skeleton writes each character as its class's first code point
(TR39 writes it as a prototype: the classes are the same, the letter that names them differs,
which changes nothing for comparing two names). Look-alike sequences ("rn" for "m") are not
caught, only look-alike characters.
"""

from __future__ import annotations

import unicodedata
from functools import cache

from confusable_homoglyphs.confusables import confusables_data


def username_normalised(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw).strip()


def username_key(raw: str) -> str:
    return username_normalised(raw).casefold()


@cache
def _classes() -> dict[str, str]:
    """Each confusable character, and the first code point of its class."""
    parent: dict[str, str] = {}

    def root(char: str) -> str:
        while parent.setdefault(char, char) != char:
            parent[char] = parent[parent[char]]
            char = parent[char]
        return char

    for char, glyphs in confusables_data.items():
        for glyph in glyphs:
            other = glyph["c"].strip("\u200e\u200f")  # bidi marks around right-to-left letters
            if len(char) == 1 and len(other) == 1:
                first, second = sorted((root(char), root(other)))
                parent[second] = first
    return {char: root(char) for char in parent}


def _skeleton(text: str) -> str:
    classes = _classes()
    mapped = "".join(classes.get(char, char) for char in unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", mapped)


def username_skeleton(raw: str) -> str:
    return _skeleton(_skeleton(username_normalised(raw)).casefold())
