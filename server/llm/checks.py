"""System checks of the AI configuration (SPEC 7.1): reported at start-up, never fatal."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register

from llm.personas import allowed_models
from llm.prices import price_for
from llm.providers import PROVIDERS, provider_name

# OpenAI keys look like sk-..., sk-proj-...; other servers accept anything non-blank.
OPENAI_KEY_SHAPE = re.compile(r"^sk-[A-Za-z0-9_\-]{16,}$")


@register(Tags.compatibility, deploy=False)
def check_ai_configuration(app_configs: Any, **kwargs: Any) -> list[Warning]:
    warnings: list[Warning] = []
    key = settings.OPENAI_API_KEY
    chosen = settings.LLM_PROVIDER.strip().lower()
    if chosen and chosen not in PROVIDERS:
        warnings.append(
            Warning(
                f"LLM_PROVIDER={chosen!r} is not a known provider.",
                hint=f"Use one of: {', '.join(sorted(PROVIDERS))}.",
                id="llm.W003",
            )
        )
    if not key and chosen in ("", "openai"):
        if provider_name() == "echo":
            hint = (
                "DEBUG is on, so the offline echo assistant answers instead. "
                "Set OPENAI_API_KEY for real replies."
            )
        else:
            hint = (
                "AI sessions answer 503 ai_not_configured until OPENAI_API_KEY is set "
                "(or LLM_PROVIDER=echo)."
            )
        warnings.append(Warning("OPENAI_API_KEY is not set.", hint=hint, id="llm.W001"))
    elif key and not settings.OPENAI_BASE_URL and not OPENAI_KEY_SHAPE.match(key.strip()):
        warnings.append(
            Warning(
                "OPENAI_API_KEY does not look like an OpenAI key (sk-...).",
                hint="Check for a typo, quotes or whitespace; `manage.py llm_check` tests it.",
                id="llm.W002",
            )
        )
    if provider_name() == "openai":
        for model in allowed_models():
            if price_for(model) is None:
                name = "LLM_MODEL" if model == settings.LLM_MODEL else "LLM_MODELS"
                warnings.append(
                    Warning(
                        f"No price is known for {model!r} ({name}): "
                        "its cost will be recorded as unknown.",
                        hint=(
                            'Add it to LLM_PRICES, e.g. {"my-model": {"input": 0.5, '
                            '"output": 1.5}} (USD per million tokens).'
                        ),
                        id="llm.W004",
                    )
                )
    return warnings
