"""Rows that several test modules need made the same way."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from accounts.models import User
from chat.models import ChatRoom
from llm.models import AiChatSession, LlmUsage


def usage_record(
    user: User,
    room: ChatRoom,
    session: AiChatSession,
    model: str,
    tokens: int,
    cost: str,
    when: datetime | None = None,
    **extra: Any,
) -> LlmUsage:
    """A finished call's usage: `tokens` prompt tokens, none of completion, `cost` dollars."""
    return LlmUsage.objects.create(
        **extra,
        provider="openai",
        model=model,
        user=user,
        room=room,
        session=session,
        prompt_tokens=tokens,
        completion_tokens=0,
        total_tokens=tokens,
        cost_usd=Decimal(cost),
        latency_ms=1,
        finish_reason="stop",
        created_at=when or timezone.now(),
    )
