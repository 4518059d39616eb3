"""The in-memory channel layer of a single process (no REDIS_URL), made cheap per message."""

from __future__ import annotations

import time

from channels.layers import InMemoryChannelLayer as _InMemoryChannelLayer


class InMemoryChannelLayer(_InMemoryChannelLayer):  # type: ignore[misc]
    """channels' in-memory layer, expiring stale messages and groups at most once a second.

    The stock layer scans every channel and every group on each send and receive, so each
    message costs time in proportion to the rooms and users online (one group each, see
    core.hub): at 1,000 sockets that scan was a third of the process's CPU. Expiry (60 s for a
    message, a day for a membership) needs no finer clock than a second.
    """

    CLEAN_EVERY_SECONDS = 1.0

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._cleaned_at = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._cleaned_at < self.CLEAN_EVERY_SECONDS:
            return
        self._cleaned_at = now
        super()._clean_expired()
