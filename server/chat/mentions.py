"""`@name` in a message: who it mentions (SPEC 9.2, 10.3).

A mention is `@` followed by a username's characters, where the `@` starts the text or follows
something that is not part of a word (so `bob@example.com` mentions nobody). A name's trailing
full stop is taken as the sentence's ("thanks @alice." mentions alice). Which of the names are
members, and what a mention does, is for the callers: the assistant answers `@AI_Assistant`,
members are notified.
"""

from __future__ import annotations

import re

from accounts.usernames import username_key

_MENTION = re.compile(r"(?<![\w@])@([\w.+-]+)")


def mentioned_keys(text: str) -> list[str]:
    """The username keys (accounts.usernames.username_key) mentioned in `text`, each once, in
    the order they first appear. Most messages name nobody: they are not parsed at all, and
    their posting stays one statement (chat.services.message_insert)."""
    if "@" not in text:
        return []
    seen: dict[str, None] = {}
    for match in _MENTION.finditer(text):
        name = match.group(1).rstrip(".")
        if name:
            seen.setdefault(username_key(name), None)
    return list(seen)
