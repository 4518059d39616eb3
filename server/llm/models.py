"""AI sessions, the replies generated in them, and what every provider call cost."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
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
    # The session as a conversation (chat.conversation_state): the id of its last message and
    # of the one before it, and how many edits and deletions it has had.
    tail_id = models.BigIntegerField(null=True, blank=True, editable=False)
    tail_prev_id = models.BigIntegerField(null=True, blank=True, editable=False)
    changes = models.BigIntegerField(default=0, editable=False)

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
    """What one provider call used and cost. The provider's own token counts when it reported
    them; otherwise (a stopped or failed stream, a provider without usage) an estimate that
    never counts fewer tokens than the provider would (`llm.tokens`), with `estimated` set.
    `cost_usd` is NULL only for a model with no price (`llm.prices`)."""

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
    # The group whose quota the call was charged to (SPEC 11.2), if any of the caller's
    # groups has one.
    quota_group = models.ForeignKey(
        Group, on_delete=models.SET_NULL, null=True, blank=True, related_name="llm_usage"
    )
    prompt_tokens = models.PositiveIntegerField()
    completion_tokens = models.PositiveIntegerField()
    total_tokens = models.PositiveIntegerField()
    estimated = models.BooleanField(default=False)
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
            models.Index(fields=["quota_group", "created_at"], name="llm_usage_group_time"),
        ]
        verbose_name = "LLM usage"
        verbose_name_plural = "LLM usage"

    def __str__(self) -> str:
        return f"{self.model} {self.total_tokens}{'~' if self.estimated else ''} tokens"


class GroupQuota(models.Model):
    """A spending limit shared by the members of a Django group (SPEC 11.2): tokens or USD per
    day, week or month (UTC; weeks start on Monday). A member may call while any of their
    groups with a quota has some left; the call is charged to that group."""

    class Unit(models.TextChoices):
        TOKENS = "tokens"
        USD = "usd", "USD"

    class Period(models.TextChoices):
        DAY = "day"
        WEEK = "week"
        MONTH = "month"

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="llm_quota")
    unit = models.CharField(max_length=6, choices=Unit.choices, default=Unit.TOKENS)
    period = models.CharField(max_length=5, choices=Period.choices, default=Period.DAY)
    limit = models.DecimalField(
        max_digits=16,
        decimal_places=6,
        validators=[MinValueValidator(0)],
        help_text="Tokens (a whole number) or USD per period.",
    )

    class Meta:
        ordering = ["group__name"]
        verbose_name = "group AI quota"

    def __str__(self) -> str:
        return f"{self.group.name}: {self.limit} {self.unit} per {self.period}"

    def clean(self) -> None:
        if self.unit == self.Unit.TOKENS and self.limit is not None and self.limit % 1:
            raise ValidationError({"limit": "A token quota is a whole number of tokens."})


class RoomBudget(models.Model):
    """A room's monthly AI budget in USD, set by its owner (SPEC 11.2), never above
    LLM_ROOM_MONTHLY_BUDGET_MAX_USD. Every call made in the room counts, in its chat and in
    its sessions, whoever asked."""

    room = models.OneToOneField(ChatRoom, on_delete=models.CASCADE, related_name="llm_budget")
    monthly_usd = models.DecimalField(
        max_digits=12, decimal_places=2, validators=[MinValueValidator(0)]
    )
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "room AI budget"

    def __str__(self) -> str:
        return f"{self.room.name}: ${self.monthly_usd} per month"

    def clean(self) -> None:
        ceiling = settings.LLM_ROOM_MONTHLY_BUDGET_MAX_USD
        if self.monthly_usd is not None and self.monthly_usd > ceiling:
            raise ValidationError(
                {"monthly_usd": f"At most ${ceiling:.2f} (LLM_ROOM_MONTHLY_BUDGET_MAX_USD)."}
            )
