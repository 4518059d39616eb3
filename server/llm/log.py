"""The AI flow's log lines (the seed's convention): every significant step logs one line
starting with [AI_DEBUG], [AI_ERROR] or [AI_SUCCESS], so `grep "\\[AI_"` isolates them.

Lines carry ids, counts and codes, never message text, keys or cookies.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("llm")


def ai_debug(msg: str, *args: object) -> None:
    logger.info("[AI_DEBUG] " + msg, *args)


def ai_success(msg: str, *args: object) -> None:
    logger.info("[AI_SUCCESS] " + msg, *args)


def ai_error(msg: str, *args: object) -> None:
    logger.error("[AI_ERROR] " + msg, *args)
