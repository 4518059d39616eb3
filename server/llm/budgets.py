"""Spending limits (SPEC 7.5, 11.2), enforced so that concurrent calls cannot overshoot.

Four scopes may limit a call: the caller's daily tokens (`user`), the quotas of the caller's
Django groups (`group`: the call may go ahead while any of them has some left, and is charged
to that one), the monthly USD budget of the room the call is made in (`room`), and the
server's monthly cost (`server`).

Before a provider call its worst case is reserved in every scope that applies: the prompt's
estimate (`llm.tokens`, never fewer than the provider will count) plus the output tokens asked
for. When a scope has less left than that, the call asks for fewer output tokens (what
remains), so a reply that fits is not refused; below MIN_OUTPUT_TOKENS it is refused with
`budget_exceeded`, its `scope` and `resets_at`. After the call the reservation is settled to
what was recorded for it: the provider's figures, or the estimate when it gave none.

The counters live in the shared cache (Redis with REDIS_URL, so one budget for every process),
keyed by scope and period. Each is taken with an atomic increment and given back when it went
past its limit, so of two processes racing for the last tokens one gets them. A counter starts
from the usage table when first touched, so a restart or an emptied cache forgets nothing that
was recorded, estimates included.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal
from uuid import UUID

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from accounts.models import User
from chat.access import access_room
from chat.models import ChatRoom
from core import metrics
from core.errors import BudgetExceeded, Forbidden, ValidationFailed
from llm import prices, tokens
from llm.access import can_set_room_budget
from llm.models import GroupQuota, LlmUsage, RoomBudget
from llm.providers.base import ChatRequest

Scope = Literal["user", "group", "room", "server"]
Unit = Literal["tokens", "usd"]

MICRO = Decimal(1_000_000)
# A reply of fewer output tokens is not worth a call: it is refused instead.
MIN_OUTPUT_TOKENS = 16
# Tries at taking the counters when other calls take the same ones at the same moment.
ATTEMPTS = 4
PREFIX = "llm:budget"


def micro_usd(usd: Decimal | None) -> int:
    """Whole millionths of a dollar, rounded up (the counters count integers)."""
    return 0 if usd is None else math.ceil(usd * MICRO)


def estimate_prompt_tokens(request: ChatRequest) -> int:
    return tokens.prompt_tokens(request.messages)


# --- periods (UTC) ---------------------------------------------------------------------------
def _day(now: dt.datetime) -> tuple[str, dt.datetime, dt.datetime]:
    start = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start.strftime("%Y-%m-%d"), start, start + dt.timedelta(days=1)


def _week(now: dt.datetime) -> tuple[str, dt.datetime, dt.datetime]:
    _, today, _ = _day(now)
    start = today - dt.timedelta(days=today.weekday())
    return start.strftime("W%Y-%m-%d"), start, start + dt.timedelta(days=7)


def _month(now: dt.datetime) -> tuple[str, dt.datetime, dt.datetime]:
    start = now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start.strftime("%Y-%m"), start, end


PERIODS = {"day": _day, "week": _week, "month": _month}


def month_bounds(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    _, start, end = _month(now or timezone.now())
    return start, end


# --- the limits of one call ------------------------------------------------------------------
@dataclass(frozen=True)
class Limit:
    """One spending limit that applies to a call, and its counter."""

    scope: Scope
    unit: Unit
    amount: int  # tokens, or millionths of a dollar
    key: str
    start: dt.datetime
    end: dt.datetime
    usage: Q  # the recorded calls that count against it
    message: str
    group_id: int | None = None

    def spent_recorded(self) -> int:
        rows = LlmUsage.objects.filter(
            self.usage, created_at__gte=self.start, created_at__lt=self.end
        )
        if self.unit == "tokens":
            return int(rows.aggregate(s=Sum("total_tokens"))["s"] or 0)
        return micro_usd(rows.aggregate(s=Sum("cost_usd"))["s"])

    def spent(self) -> int:
        """What the counter holds (recorded usage plus reservations in flight)."""
        value = cache.get(self.key)
        if value is None:
            # add() is set-if-absent: of two processes starting the same counter, one wins.
            cache.add(self.key, self.spent_recorded(), timeout=self.ttl)
            value = cache.get(self.key)
        return int(value or 0)

    @property
    def ttl(self) -> int:
        # Past its period's end, so the counter never restarts from a part of its period.
        return int((self.end - self.start).total_seconds()) + 86400

    def refusal(self) -> BudgetExceeded:
        return BudgetExceeded(self.message, scope=self.scope, resets_at=self.end)


def _usd(amount: Decimal) -> str:
    return f"${amount.quantize(Decimal('0.01'))}"


def user_limit(user_id: int, now: dt.datetime) -> Limit | None:
    daily = settings.LLM_USER_DAILY_TOKEN_BUDGET
    if daily <= 0:
        return None
    day, start, end = _day(now)
    return Limit(
        scope="user",
        unit="tokens",
        amount=daily,
        key=f"{PREFIX}:user:{user_id}:{day}",
        start=start,
        end=end,
        usage=Q(user_id=user_id),
        message=f"Your daily AI budget of {daily} tokens is used up.",
    )


def server_limit(now: dt.datetime) -> Limit | None:
    monthly = settings.LLM_MONTHLY_COST_BUDGET_USD
    if monthly <= 0:
        return None
    month, start, end = _month(now)
    return Limit(
        scope="server",
        unit="usd",
        amount=micro_usd(monthly),
        key=f"{PREFIX}:server:{month}",
        start=start,
        end=end,
        usage=Q(),
        message=f"This server's monthly AI budget of {_usd(monthly)} is used up.",
    )


def room_limit(room_id: UUID, now: dt.datetime) -> Limit | None:
    budget = RoomBudget.objects.filter(room_id=room_id).first()
    if budget is None:
        return None
    month, start, end = _month(now)
    return Limit(
        scope="room",
        unit="usd",
        amount=micro_usd(budget.monthly_usd),
        key=f"{PREFIX}:room:{room_id}:{month}",
        start=start,
        end=end,
        usage=Q(room_id=room_id),
        message=f"This room's monthly AI budget of {_usd(budget.monthly_usd)} is used up.",
    )


def group_limit(quota: GroupQuota, now: dt.datetime) -> Limit:
    period, start, end = PERIODS[quota.period](now)
    usd = quota.unit == GroupQuota.Unit.USD
    amount = micro_usd(quota.limit) if usd else int(quota.limit)
    shown = _usd(quota.limit) if usd else f"{int(quota.limit)} tokens"
    return Limit(
        scope="group",
        unit="usd" if usd else "tokens",
        amount=amount,
        key=f"{PREFIX}:group:{quota.group_id}:{quota.period}:{quota.unit}:{period}",
        start=start,
        end=end,
        usage=Q(quota_group_id=quota.group_id),
        message=f"The AI quota of your group {quota.group.name!r} ({shown} per {quota.period}) "
        "is used up.",
        group_id=quota.group_id,
    )


def group_limits(user_id: int, now: dt.datetime) -> list[Limit]:
    quotas = GroupQuota.objects.filter(group__user__id=user_id).select_related("group")
    return [group_limit(q, now) for q in quotas.order_by("group_id")]


# --- reserving and settling --------------------------------------------------------------------
@dataclass(frozen=True)
class Charge:
    """What a call is charged: its worst case while reserved, then its usage record."""

    tokens: int
    micro_usd: int

    @classmethod
    def of(cls, record: LlmUsage) -> Charge:
        return cls(record.total_tokens, micro_usd(record.cost_usd))

    def amount(self, unit: Unit) -> int:
        return self.tokens if unit == "tokens" else self.micro_usd


@dataclass(frozen=True)
class Reservation:
    max_output_tokens: int
    worst: Charge
    # (counter key, unit) of every limit it was taken from.
    counters: tuple[tuple[str, Unit], ...]
    group_id: int | None = None


class _Price:
    """The call's cost in millionths of a dollar; unknown (None) for an unpriced model, whose
    calls USD limits cannot count."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.price = prices.price_for(model)

    def micro(self, prompt: int, output: int) -> int | None:
        if self.price is None:
            return None
        return micro_usd(prices.cost_usd(self.model, prompt, output))

    def output_within(self, left_micro: int, prompt: int) -> int | None:
        """The most output tokens whose cost, with the prompt's, fits `left_micro`; None when
        USD does not limit this model."""
        if self.price is None:
            return None
        prompt_micro = self.micro(prompt, 0) or 0
        if self.price.output_per_million == 0:
            return None if prompt_micro <= left_micro else -1
        per_token = self.price.output_per_million / prices.MILLION * MICRO
        return math.floor((left_micro - prompt_micro) / per_token)


def _output_within(limit: Limit, price: _Price, prompt: int) -> int | None:
    left = limit.amount - limit.spent()
    if limit.unit == "tokens":
        return left - prompt
    return price.output_within(left, prompt)


def budget_reserve(*, user_id: int, room_id: UUID, request: ChatRequest) -> Reservation:
    """Reserve one call's worst case in every limit that applies, asking for fewer output
    tokens where one has less left; raise BudgetExceeded when one leaves fewer than
    MIN_OUTPUT_TOKENS."""
    now = timezone.now()
    scopes = (user_limit(user_id, now), room_limit(room_id, now), server_limit(now))
    limits = [lim for lim in scopes if lim is not None]
    groups = group_limits(user_id, now)
    price = _Price(request.model)
    prompt = estimate_prompt_tokens(request)
    refusal: Limit | None = None
    for _ in range(ATTEMPTS):
        output = request.max_output_tokens
        binding: Limit | None = None
        for lim in limits:
            fits = _output_within(lim, price, prompt)
            if fits is not None and fits < output:
                output, binding = fits, lim
        group: Limit | None = None
        if groups:
            # The group with the most left (the first of equals): a call should not be cut
            # short by one group while another has room.
            best = -1
            for lim in groups:
                fits = _output_within(lim, price, prompt)
                room = request.max_output_tokens if fits is None else fits
                if room > best:
                    best, group = room, lim
            if best < output:
                output, binding = best, group
        if binding is not None and output < MIN_OUTPUT_TOKENS:
            refusal = binding
            break
        cost = price.micro(prompt, output)
        reservation = Reservation(
            max_output_tokens=output,
            worst=Charge(prompt + output, cost or 0),
            counters=(),
            group_id=group.group_id if group else None,
        )
        taken: list[tuple[str, Unit]] = []
        failed: Limit | None = None
        for lim in [*limits, *([group] if group else [])]:
            amount = reservation.worst.amount(lim.unit)
            if lim.unit == "usd" and cost is None:
                continue
            try:
                value = cache.incr(lim.key, amount)
            except ValueError:  # the counter expired or was emptied since it was read
                lim.spent()
                value = cache.incr(lim.key, amount)
            taken.append((lim.key, lim.unit))
            if value > lim.amount:
                failed = lim
                break
        if failed is None:
            return dataclasses.replace(reservation, counters=tuple(taken))
        for key, unit in taken:
            _adjust(key, -reservation.worst.amount(unit))
        refusal = failed
    metrics.record_refusal("budget_exceeded")
    if refusal is None:  # every attempt lost its race without a limit to blame: none left
        raise BudgetExceeded(
            "The AI budget is used up.", scope="server", resets_at=month_bounds(now)[1]
        )
    if refusal.scope == "group":
        # No group has enough left: say when the first of them starts again.
        soonest = min(groups, key=lambda lim: lim.end)
        raise BudgetExceeded(
            "The AI quotas of all your groups are used up.", scope="group", resets_at=soonest.end
        )
    raise refusal.refusal()


def budget_settle(*, reservation: Reservation, charge: Charge | None) -> None:
    """Replace the reservation by what the call was charged (its usage record, the provider's
    figures or the estimate); with no record (the reply could not be saved) the reservation
    stays as the charge."""
    if charge is None:
        return
    for key, unit in reservation.counters:
        _adjust(key, charge.amount(unit) - reservation.worst.amount(unit))


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


# --- a room's budget ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RoomBudgetState:
    """A room's monthly budget and what its recorded calls cost this month."""

    room_id: UUID
    monthly_usd: Decimal | None
    spent_usd: Decimal
    resets_at: dt.datetime
    can_edit: bool

    def figures(self) -> dict[str, object]:
        """As the API shows it; what is left is the budget less the spend as written, so the
        two always add up to the budget."""
        spent = prices.usd_text(self.spent_usd) or "0.000000"
        remaining = None
        if self.monthly_usd is not None:
            remaining = prices.usd_text(max(self.monthly_usd - Decimal(spent), Decimal(0)))
        return {
            "room_id": self.room_id,
            "monthly_usd": None if self.monthly_usd is None else f"{self.monthly_usd:.2f}",
            "spent_usd": spent,
            "remaining_usd": remaining,
            "resets_at": self.resets_at,
            "max_usd": f"{settings.LLM_ROOM_MONTHLY_BUDGET_MAX_USD:.2f}",
            "can_edit": self.can_edit,
        }


def room_budget_state(*, room: ChatRoom, viewer: User) -> RoomBudgetState:
    start, end = month_bounds()
    budget = RoomBudget.objects.filter(room=room).first()
    spent = LlmUsage.objects.filter(room=room, created_at__gte=start, created_at__lt=end).aggregate(
        s=Sum("cost_usd")
    )["s"]
    return RoomBudgetState(
        room_id=room.pk,
        monthly_usd=budget.monthly_usd if budget else None,
        spent_usd=spent or Decimal(0),
        resets_at=end,
        can_edit=can_set_room_budget(user=viewer, room=room),
    )


@transaction.atomic
def room_budget_set(*, room_id: UUID, actor: User, monthly_usd: Decimal | None) -> ChatRoom:
    """Set (or, with None, remove) a room's monthly budget: its owner only, at most
    LLM_ROOM_MONTHLY_BUDGET_MAX_USD."""
    room = access_room(room_id=room_id, user=actor)
    if not can_set_room_budget(user=actor, room=room):
        raise Forbidden("Only the room's owner sets its AI budget.")
    if monthly_usd is None:
        RoomBudget.objects.filter(room=room).delete()
        return room
    ceiling = settings.LLM_ROOM_MONTHLY_BUDGET_MAX_USD
    if not monthly_usd.is_finite() or monthly_usd < 0:
        raise ValidationFailed("monthly_usd: a number of dollars, 0 or more.")
    if monthly_usd > ceiling:
        raise ValidationFailed(f"monthly_usd: at most ${ceiling:.2f} (this server's limit).")
    if monthly_usd != monthly_usd.quantize(Decimal("0.01")):
        raise ValidationFailed("monthly_usd: whole cents (two decimals) at most.")
    RoomBudget.objects.update_or_create(
        room=room,
        defaults={"monthly_usd": monthly_usd, "set_by": actor, "updated_at": timezone.now()},
    )
    return room
