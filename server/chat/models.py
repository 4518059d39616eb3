from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ChatRoom(models.Model):
    """A room: its owner and participants are its members."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_rooms"
    )
    participants = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="joined_rooms", blank=True
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Whether AI_Assistant answers `@AI_Assistant` in this room's chat (the owner's switch).
    ai_mentions = models.BooleanField(default=True)
    # The room's chat as a conversation (chat.conversation_state): the id of its last message
    # and of the one before it, and how many edits and deletions it has had.
    tail_id = models.BigIntegerField(null=True, blank=True, editable=False)
    tail_prev_id = models.BigIntegerField(null=True, blank=True, editable=False)
    changes = models.BigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Message(models.Model):
    """A message in a room. Room chat has no AI session; AI-session messages belong to one."""

    id = models.BigAutoField(primary_key=True)
    room = models.ForeignKey(ChatRoom, on_delete=models.CASCADE, related_name="messages")
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="messages"
    )
    content = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    # Set for messages of an AI session; room chat has none.
    ai_session = models.ForeignKey(
        "llm.AiChatSession",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="messages",
    )
    # Made up by the client; a retry with the same id is not stored twice.
    # NULL (not "") when absent, so that the partial unique constraint skips it.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # Set on a note about the conversation rather than something said (e.g. "alice switched
    # the model to ..."): what changed, for clients to word it; `content` words it in English.
    note = models.JSONField(null=True, blank=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    # A deleted message keeps its row (and its place in the history) with its text erased.
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The conversation's change counter as of this message's last edit or deletion (or the
    # edit of the question it answers): what `changed_after=` finds.
    change_seq = models.BigIntegerField(null=True, blank=True)
    # Set on an AI reply whose question was edited after the reply was written.
    reply_to_edited = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["room", "id"],
                condition=Q(ai_session__isnull=True),
                name="chat_msg_room_chat",
            ),
            models.Index(fields=["ai_session", "id"], name="chat_msg_session_id"),
            models.Index(
                fields=["room", "change_seq"],
                condition=Q(ai_session__isnull=True, change_seq__isnull=False),
                name="chat_msg_room_changes",
            ),
            models.Index(
                fields=["ai_session", "change_seq"],
                condition=Q(change_seq__isnull=False),
                name="chat_msg_session_changes",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["sender", "client_id"],
                condition=Q(client_id__isnull=False),
                name="chat_msg_sender_client_id_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.sender_id}: {self.content[:40]}"


class ReadMarker(models.Model):
    """How far a member has read a room's chat: every room-chat message up to and including
    `last_read_message_id` is read. It only moves forward (chat.reads.read_mark)."""

    room = models.ForeignKey(ChatRoom, on_delete=models.CASCADE, related_name="read_markers")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="read_markers"
    )
    last_read_message_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "room"], name="chat_read_marker_user_room")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.room_id} up to {self.last_read_message_id}"


class Mention(models.Model):
    """A member named with `@username` in a message (SPEC 9.2). `room` and `in_room_chat` are
    the message's own, kept here so that counting a member's unread mentions in a room reads
    this table's index alone."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="mentions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mentions"
    )
    room = models.ForeignKey(ChatRoom, on_delete=models.CASCADE, related_name="+")
    in_room_chat = models.BooleanField(default=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["user", "room", "message"],
                condition=Q(in_room_chat=True),
                name="chat_mention_unread",
            )
        ]
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="chat_mention_once")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.message_id}"
