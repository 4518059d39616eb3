"""Prices per million tokens and the cost of a call, in Decimal USD.

Built-in prices cover the common OpenAI models (USD per 1M tokens, input / output, as listed
on OpenAI's pricing page); `LLM_PRICES` adds or overrides any model, e.g. a local one at zero:
`{"llama3.1": {"input": 0, "output": 0}}`. A model with no price has an unknown cost (NULL),
never a made-up one. A dated model name (`gpt-4o-mini-2024-07-18`) takes its family's price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MILLION = Decimal(1_000_000)

BUILT_IN: dict[str, tuple[str, str]] = {
    "gpt-4o": ("2.50", "10.00"),
    "gpt-4o-mini": ("0.15", "0.60"),
    "gpt-4.1": ("2.00", "8.00"),
    "gpt-4.1-mini": ("0.40", "1.60"),
    "gpt-4.1-nano": ("0.10", "0.40"),
    "gpt-4-turbo": ("10.00", "30.00"),
    "gpt-3.5-turbo": ("0.50", "1.50"),
    "o1": ("15.00", "60.00"),
    "o1-mini": ("1.10", "4.40"),
    "o3": ("2.00", "8.00"),
    "o3-mini": ("1.10", "4.40"),
    "o4-mini": ("1.10", "4.40"),
    "gpt-5": ("1.25", "10.00"),
    "gpt-5-mini": ("0.25", "2.00"),
    "gpt-5-nano": ("0.05", "0.40"),
    "echo": ("0", "0"),
}


@dataclass(frozen=True)
class Price:
    input_per_million: Decimal
    output_per_million: Decimal


def _decimal(value: object, where: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except ArithmeticError as exc:
        raise ImproperlyConfigured(f"LLM_PRICES: {where} is not a number: {value!r}") from exc
    if number < 0 or not number.is_finite():
        raise ImproperlyConfigured(f"LLM_PRICES: {where} must be a finite number >= 0.")
    return number


@cache
def price_table() -> dict[str, Price]:
    table = {name: Price(Decimal(i), Decimal(o)) for name, (i, o) in BUILT_IN.items()}
    for name, spec in settings.LLM_PRICES.items():
        if not isinstance(spec, dict) or not {"input", "output"} <= spec.keys():
            raise ImproperlyConfigured(
                f"LLM_PRICES: {name!r} must be "
                '{"input": <usd>, "output": <usd>} per million tokens.'
            )
        table[name] = Price(
            _decimal(spec["input"], f"{name}.input"), _decimal(spec["output"], f"{name}.output")
        )
    return table


def price_for(model: str) -> Price | None:
    table = price_table()
    if model in table:
        return table[model]
    # Longest known prefix: "gpt-4o-mini-2024-07-18" -> "gpt-4o-mini".
    matches = [name for name in table if model.startswith(name + "-")]
    return table[max(matches, key=len)] if matches else None


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> Decimal | None:
    price = price_for(model)
    if price is None:
        return None
    return (
        Decimal(prompt_tokens) * price.input_per_million
        + Decimal(completion_tokens) * price.output_per_million
    ) / MILLION


USD_PLACES = Decimal("0.000001")


def usd_text(usd: Decimal | None) -> str | None:
    """The one way a cost is written (SPEC 11.1): USD with 6 decimals, rounded up, so a call
    that cost anything never reads as $0 (a gpt-4o-mini token costs $0.00000015). None for an
    unknown cost (a model with no price)."""
    if usd is None:
        return None
    return str(usd.quantize(USD_PLACES, rounding=ROUND_CEILING))
