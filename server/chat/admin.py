from django.contrib import admin

from chat.models import ChatRoom, Message


@admin.register(ChatRoom)
class ChatRoomAdmin(admin.ModelAdmin[ChatRoom]):
    list_display = ("name", "owner", "created_at", "id")
    search_fields = ("name", "owner__username", "participants__username", "id")
    list_select_related = ("owner",)
    autocomplete_fields = ("owner", "participants")
    date_hierarchy = "created_at"


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin[Message]):
    list_display = ("id", "room", "sender", "short_content", "created_at")
    search_fields = ("content", "sender__username", "room__name")
    list_filter = ("created_at",)
    list_select_related = ("room", "sender")
    raw_id_fields = ("room", "sender")
    date_hierarchy = "created_at"

    @admin.display(description="content")
    def short_content(self, obj: Message) -> str:
        return obj.content[:80]
