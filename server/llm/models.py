"""AI sessions, the replies generated in them, and what every provider call cost."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from chat.models import ChatRoom, Message

SYSTEM_PROMPT_MAX_CHARS = 4000


class Persona(models.Model):
    """A preset of who the assistant is (SPEC 10.1), kept here and managed in the admin: what
    it is told (its system prompt) and the model it uses unless a session picks another. One
    is the default: sessions opened without a choice, and the assistant in room chat, use it."""

    key = models.SlugField(max_length=50, unique=True, help_text="What clients send to pick it.")
    name = models.CharField(max_length=100)
    system_prompt = models.TextField(
        max_length=SYSTEM_PROMPT_MAX_CHARS,
        blank=True,
        help_text="What the assistant is told. Blank: LLM_SYSTEM_PROMPT (by default the "
        "seed's Korean developer assistant).",
    )
    default_model = models.CharField(
        max_length=100,
        blank=True,
        help_text="The model of sessions that pick this persona without naming one; one of "
        "LLM_MODELS. Blank: LLM_MODEL.",
    )
    is_default = models.BooleanField(
        default=False, help_text="Used when no persona is chosen (one persona at most)."
    )

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="llm_persona_one_default",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        # A new default is not refused for the one it replaces: saving it (through
        # llm.services.persona_save) hands the default over in one transaction.
        super().validate_constraints(exclude={*(exclude or ()), "is_default"})

    def clean(self) -> None:
        from llm.personas import allowed_models

        if self.default_model and self.default_model not in allowed_models():
            raise ValidationError(
                {"default_model": f"One of LLM_MODELS: {', '.join(allowed_models())}."}
            )


class AiChatSession(models.Model):
    """A conversation with AI_Assistant inside a room (a room may have many)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    room = models.ForeignKey(ChatRoom, on_delete=models.CASCADE, related_name="ai_sessions")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ai_sessions_created"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    is_active = models.BooleanField(default=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deactivated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    model = models.CharField(max_length=100)
    title = models.CharField(max_length=100, blank=True, default="")
    # Who the assistant is here: a preset, or (system_prompt not blank) the session's own
    # prompt, which then takes the preset's place.
    persona = models.ForeignKey(
        Persona, on_delete=models.SET_NULL, null=True, blank=True, related_name="sessions"
    )
    system_prompt = models.TextField(max_length=SYSTEM_PROMPT_MAX_CHARS, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "AI session"

    def __str__(self) -> str:
        return f"{self.room.name} / {self.id}"


class AiReply(models.Model):
    """One reply of the assistant to one member's message: the queue entry, its progress and
    its outcome. Its conversation is its room's chat (`session` empty) or one AI session;
    replies of a conversation are generated one at a time, in the order of their messages."""

    class Status(models.TextChoices):
        PENDING = "pending"
        STREAMING = "streaming"
        DONE = "done"
        STOPPED = "stopped"
        FAILED = "failed"
        INTERRUPTED = "interrupted"
        CANCELLED = "cancelled"

    room = models.ForeignKey(ChatRoom, on_delete=models.CASCADE, related_name="ai_replies")
    session = models.ForeignKey(
        AiChatSession, on_delete=models.CASCADE, null=True, blank=True, related_name="replies"
    )
    # The question. Asking again (regenerate, retry) adds a reply to the same question: its
    # replies with text are the versions of the answer, oldest first.
    trigger = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="ai_requests")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    stream_id = models.UUIDField(default=uuid.uuid4, editable=False)
    # The text streamed so far, saved every few seconds, so that a reply whose process died
    # can be shown as interrupted with what it had said.
    checkpoint = models.TextField(blank=True, default="")
    reply = models.OneToOneField(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="ai_reply"
    )
    finish_reason = models.CharField(max_length=12, blank=True, default="")
    error_code = models.CharField(max_length=40, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["session", "status", "id"], name="llm_reply_queue"),
            models.Index(
                fields=["room", "status", "id"],
                condition=models.Q(session__isnull=True),
                name="llm_reply_room_queue",
            ),
        ]
        constraints = [
            # A question is answered once at a time, whichever process is asked again.
            models.UniqueConstraint(
                fields=["trigger"],
                condition=models.Q(status__in=["pending", "streaming"]),
                name="llm_reply_one_open_per_question",
            )
        ]
        verbose_name = "AI reply"
        verbose_name_plural = "AI replies"

    def __str__(self) -> str:
        return f"reply {self.pk} ({self.status})"


class LlmUsage(models.Model):
    """What one provider call used and cost. Token counts are the provider's own; when it
    reported none (an interrupted stream, a provider without usage) they are NULL, meaning
    unknown, never zero."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    provider = models.CharField(max_length=40)
    model = models.CharField(max_length=100)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="llm_usage"
    )
    session = models.ForeignKey(
        AiChatSession, on_delete=models.SET_NULL, null=True, blank=True, related_name="usage"
    )
    room = models.ForeignKey(
        ChatRoom, on_delete=models.SET_NULL, null=True, blank=True, related_name="llm_usage"
    )
    reply = models.OneToOneField(
        AiReply, on_delete=models.SET_NULL, null=True, blank=True, related_name="usage"
    )
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    usage_known = models.BooleanField(default=False)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    finish_reason = models.CharField(max_length=12)
    error_code = models.CharField(max_length=40, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "created_at"], name="llm_usage_user_time"),
            models.Index(fields=["room", "created_at"], name="llm_usage_room_time"),
        ]
        verbose_name = "LLM usage"
        verbose_name_plural = "LLM usage"

    def __str__(self) -> str:
        return f"{self.model} {self.total_tokens if self.usage_known else '?'} tokens"
