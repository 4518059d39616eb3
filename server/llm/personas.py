"""Who the assistant is in a conversation, and which model it runs on (SPEC 10.1).

A session names a preset (`Persona`) or carries a prompt of its own; the assistant in a room's
chat is the default preset. A preset's blank prompt is LLM_SYSTEM_PROMPT, so a session opened
the seed's way (nothing chosen) is told exactly what the seed's assistant was told, on the
seed's model. Models come from the operator's allow-list, LLM_MODELS.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from core.errors import ValidationFailed, text_field
from llm.models import SYSTEM_PROMPT_MAX_CHARS, AiChatSession, Persona
from llm.providers import model_name, provider_name


def allowed_models() -> list[str]:
    """The models a session may use: LLM_MODEL first, then the rest of LLM_MODELS. The
    offline echo provider has one model, `echo`, whatever is configured."""
    if provider_name() == "echo":
        return [model_name()]
    return list(dict.fromkeys([settings.LLM_MODEL, *settings.LLM_MODELS]))


def model_check(model: str) -> str:
    """`model` if sessions may use it, else a validation error that names the ones they may."""
    allowed = allowed_models()
    if model not in allowed:
        raise ValidationFailed(f"model: must be one of {', '.join(allowed)}.")
    return model


def prompt_check(prompt: str) -> str:
    """A session's own system prompt, trimmed: 1 to SYSTEM_PROMPT_MAX_CHARS characters."""
    return text_field(
        prompt,
        field="system_prompt",
        at_most=SYSTEM_PROMPT_MAX_CHARS,
        empty="must not be empty (choose a persona instead)",
    )


def persona_list() -> list[Persona]:
    return list(Persona.objects.all())


def persona_get(key: str) -> Persona:
    """The preset named `key`, or a validation error that lists them."""
    persona = Persona.objects.filter(key=key).first()
    if persona is None:
        keys = ", ".join(Persona.objects.values_list("key", flat=True)) or "none"
        raise ValidationFailed(f"persona: no preset {key!r} (there are: {keys}).")
    return persona


def default_persona() -> Persona | None:
    return Persona.objects.filter(is_default=True).first()


def persona_prompt(persona: Persona | None) -> str:
    """What a preset tells the assistant (blank, or no preset: LLM_SYSTEM_PROMPT)."""
    if persona is not None and persona.system_prompt:
        return persona.system_prompt
    return str(settings.LLM_SYSTEM_PROMPT)


def persona_model(persona: Persona | None) -> str:
    """The model a preset runs on when none is chosen: its own if it is still allowed, else
    the server's default."""
    if persona is not None and persona.default_model in allowed_models():
        return persona.default_model
    return model_name()


@dataclass(frozen=True)
class Steering:
    """What one reply is generated with."""

    model: str
    system_prompt: str


def session_steering(session: AiChatSession) -> Steering:
    return Steering(
        model=session.model,
        system_prompt=session.system_prompt or persona_prompt(session.persona),
    )


def room_steering() -> Steering:
    """The assistant in room chat: the default preset (SPEC 10.3)."""
    persona = default_persona()
    return Steering(model=persona_model(persona), system_prompt=persona_prompt(persona))
