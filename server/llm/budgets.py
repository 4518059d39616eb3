"""Spending limits (SPEC 7.5): a daily token budget per user and a monthly cost budget for the
whole server, enforced so that concurrent requests cannot overshoot.

Before a provider call the worst case is reserved: the prompt's estimated tokens plus
LLM_MAX_OUTPUT_TOKENS (and their cost). After the call the reservation is settled to what the
provider reported. A call whose usage stayed unknown keeps its reservation as its charge.

The counters live in the shared cache (Redis with REDIS_URL, so one budget for every process),
keyed by day or month, and start from the usage table when first touched, so a restart or an
emptied cache forgets nothing that was recorded.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import Sum
from django.utils import timezone

from core import metrics
from core.errors import BudgetExceeded
from llm import prices
from llm.models import LlmUsage
from llm.providers.base import ChatRequest, Usage

MICRO = Decimal(1_000_000)
# Per message: role and separators the model counts beside the text.
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_prompt_tokens(request: ChatRequest) -> int:
    """An upper estimate of the prompt's tokens: one per character (tokenizers give fewer for
    the scripts people write here) plus a few per message."""
    return sum(len(m.content) + MESSAGE_OVERHEAD_TOKENS for m in request.messages) + 3


@dataclass(frozen=True)
class Reservation:
    user_id: int
    model: str
    tokens: int
    micro_usd: int
    day_key: str | None
    month_key: str | None


def _day(now: dt.datetime) -> tuple[str, dt.datetime, dt.datetime]:
    start = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start.strftime("%Y-%m-%d"), start, start + dt.timedelta(days=1)


def _month(now: dt.datetime) -> tuple[str, dt.datetime, dt.datetime]:
    start = now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start.strftime("%Y-%m"), start, end


def _micro(usd: Decimal | None) -> int:
    return 0 if usd is None else math.ceil(usd * MICRO)


def _counter(key: str, initial: int, ttl: int) -> None:
    # add() is set-if-absent: of two processes starting the same counter, one wins.
    cache.add(key, initial, timeout=ttl)


def _prefix() -> str:
    return "llm:budget"


def budget_reserve(*, user_id: int, request: ChatRequest) -> Reservation:
    """Reserve the worst case of one call, or raise BudgetExceeded."""
    now = timezone.now()
    tokens = estimate_prompt_tokens(request) + request.max_output_tokens
    cost = prices.cost_usd(
        request.model, estimate_prompt_tokens(request), request.max_output_tokens
    )
    micro = _micro(cost)
    day_key = month_key = None
    daily = settings.LLM_USER_DAILY_TOKEN_BUDGET
    if daily > 0:
        day, start, end = _day(now)
        day_key = f"{_prefix()}:tokens:{user_id}:{day}"
        used = LlmUsage.objects.filter(
            user_id=user_id, created_at__gte=start, created_at__lt=end
        ).aggregate(s=Sum("total_tokens"))["s"]
        _counter(day_key, int(used or 0), ttl=2 * 86400)
        if cache.incr(day_key, tokens) > daily:
            cache.decr(day_key, tokens)
            metrics.record_refusal("budget_exceeded")
            raise BudgetExceeded(
                f"Your daily AI budget of {daily} tokens is used up.", resets_at=end
            )
    monthly = _micro(settings.LLM_MONTHLY_COST_BUDGET_USD)
    if monthly > 0 and micro > 0:
        month, start, end = _month(now)
        month_key = f"{_prefix()}:cost:{month}"
        spent = LlmUsage.objects.filter(created_at__gte=start, created_at__lt=end).aggregate(
            s=Sum("cost_usd")
        )["s"]
        _counter(month_key, _micro(spent), ttl=40 * 86400)
        if cache.incr(month_key, micro) > monthly:
            cache.decr(month_key, micro)
            if day_key:
                cache.decr(day_key, tokens)
            metrics.record_refusal("budget_exceeded")
            raise BudgetExceeded(
                f"This server's monthly AI budget of ${settings.LLM_MONTHLY_COST_BUDGET_USD} "
                "is used up.",
                resets_at=end,
            )
    return Reservation(
        user_id, request.model, tokens, micro if month_key else 0, day_key, month_key
    )


def budget_settle(*, reservation: Reservation, usage: Usage | None) -> None:
    """Replace the reservation by what the call used; unknown usage keeps the reservation as
    its charge."""
    if usage is None:
        return
    if reservation.day_key:
        _adjust(reservation.day_key, usage.total_tokens - reservation.tokens)
    if reservation.month_key:
        cost = prices.cost_usd(reservation.model, usage.prompt_tokens, usage.completion_tokens)
        _adjust(reservation.month_key, _micro(cost) - reservation.micro_usd)


def _adjust(key: str, delta: int) -> None:
    if delta == 0:
        return
    try:
        if delta > 0:
            cache.incr(key, delta)
        else:
            cache.decr(key, -delta)
    except ValueError:
        # The counter expired meanwhile; it restarts from the usage table.
        pass
