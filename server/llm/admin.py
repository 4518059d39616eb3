from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from llm.models import AiChatSession, AiReply, GroupQuota, LlmUsage, Persona, RoomBudget
from llm.personas import persona_prompt
from llm.prices import usd_text
from llm.selectors import usage_totals
from llm.services import persona_save, session_deactivate


@admin.register(Persona)
class PersonaAdmin(admin.ModelAdmin[Persona]):
    list_display = ("name", "key", "is_default", "default_model", "told")
    search_fields = ("key", "name")
    readonly_fields = ("told",)
    fields = ("key", "name", "system_prompt", "told", "default_model", "is_default")

    @admin.display(description="What the assistant is told")
    def told(self, persona: Persona) -> str:
        return persona_prompt(persona)

    def save_model(self, request: HttpRequest, obj: Persona, form: Any, change: bool) -> None:
        persona_save(persona=obj)


@admin.register(AiChatSession)
class AiChatSessionAdmin(admin.ModelAdmin[AiChatSession]):
    list_display = (
        "id",
        "room",
        "title",
        "created_by",
        "model",
        "persona",
        "is_active",
        "created_at",
        "deactivated_at",
    )
    list_filter = ("is_active", "model", "created_at")
    search_fields = ("id", "room__name", "created_by__username")
    list_select_related = ("room", "created_by")
    raw_id_fields = ("room", "created_by", "deactivated_by", "persona")
    readonly_fields = ("deactivated_at", "deactivated_by")
    date_hierarchy = "created_at"
    actions = ["deactivate"]

    @admin.action(description="Deactivate selected sessions (closes their sockets)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[AiChatSession]) -> None:
        count = 0
        for session in queryset.filter(is_active=True):
            session_deactivate(session_id=session.pk, actor=request.user)  # type: ignore[arg-type]
            count += 1
        self.message_user(request, f"{count} session(s) deactivated.", messages.SUCCESS)


@admin.register(AiReply)
class AiReplyAdmin(admin.ModelAdmin[AiReply]):
    list_display = (
        "id",
        "session",
        "requested_by",
        "status",
        "finish_reason",
        "error_code",
        "created_at",
    )
    list_filter = ("status", "finish_reason", "error_code")
    search_fields = ("session__id", "requested_by__username")
    list_select_related = ("session", "requested_by")
    raw_id_fields = ("session", "trigger", "reply", "requested_by")


@admin.register(LlmUsage)
class LlmUsageAdmin(admin.ModelAdmin[LlmUsage]):
    list_display = (
        "created_at",
        "user",
        "room",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost",
        "estimated",
        "time_to_first_token_ms",
        "latency_ms",
        "finish_reason",
    )
    list_filter = ("model", "provider", "finish_reason", "estimated", "created_at")
    search_fields = ("user__username", "room__name", "model")
    list_select_related = ("user", "room")
    raw_id_fields = ("user", "session", "room", "reply", "quota_group")
    date_hierarchy = "created_at"

    @admin.display(description="cost (USD)", ordering="cost_usd")
    def cost(self, obj: LlmUsage) -> str:
        return usd_text(obj.cost_usd) or "unknown"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        # Totals of what the filters select, above the list, as the API shows them.
        context = getattr(response, "context_data", None)
        if context is not None and "cl" in context:
            context["usage_totals"] = usage_totals(context["cl"].queryset).figures()
        return response


@admin.register(GroupQuota)
class GroupQuotaAdmin(admin.ModelAdmin[GroupQuota]):
    list_display = ("group", "limit", "unit", "period")
    list_filter = ("unit", "period")
    search_fields = ("group__name",)
    list_select_related = ("group",)


@admin.register(RoomBudget)
class RoomBudgetAdmin(admin.ModelAdmin[RoomBudget]):
    list_display = ("room", "monthly_usd", "set_by", "updated_at")
    search_fields = ("room__name",)
    list_select_related = ("room", "set_by")
    raw_id_fields = ("room", "set_by")
    readonly_fields = ("set_by", "updated_at")

    def save_model(self, request: HttpRequest, obj: RoomBudget, form: Any, change: bool) -> None:
        obj.set_by = request.user  # type: ignore[assignment]
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)
