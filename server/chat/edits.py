"""Changing a message after it was sent (SPEC 9.4): its sender edits it, its sender or the
room's owner deletes it. Each takes the next change number of the message's conversation
under the conversation's lock (chat.order), stamps it on what changed, and announces the change
to everyone in the conversation once committed.

The members an edited message mentions are those its new text names (recorded again, so the
mention counts follow); a deleted message mentions nobody and is no longer unread. A change to
room chat also reaches the members' `/ws/me/` sockets (`room_changed`), which adjust their
counts and, when it was the room's last message, what the room list shows of it."""

from __future__ import annotations

import logging
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from chat.access import access_message, delete_refusal, edit_refusal
from chat.conversations import Conversation
from chat.events import MessageDeletedFrame, MessageEditedFrame
from chat.mentions import mentioned_keys
from chat.models import Mention, Message
from chat.order import change_next
from chat.selectors import mentions_of
from chat.services import mentions_record, message_clean
from chat.workspace import room_changed_event
from core import ratelimit
from core.errors import Forbidden
from core.events import frame_event, publish_on_commit

logger = logging.getLogger(__name__)


class Changed(NamedTuple):
    """A message after an edit or a deletion, its room's owner and whom it mentions now."""

    message: Message
    owner_id: int
    mentions: list[str]


def _count_change(actor: User) -> None:
    # An edit or a deletion reaches everyone like a message: it counts against the same rate.
    ratelimit.hit("chat", str(actor.pk), settings.CHAT_USER_RATE)


def _locked(message: Message) -> tuple[Conversation, int, Message]:
    """Take the conversation's next change number (and its lock), then read the message again:
    a change committed while this one waited for the lock is seen."""
    conversation = Conversation.of(message)
    seq = change_next(conversation=conversation)
    fresh = Message.objects.select_related("sender").get(pk=message.pk)
    return conversation, seq, fresh


def _mentions_forget(message: Message) -> list[int]:
    """Drop the mentions a message recorded; returns whom it mentioned."""
    mentions = Mention.objects.filter(message=message)
    before = list(mentions.values_list("user_id", flat=True))
    mentions.delete()
    return before


@transaction.atomic
def message_edit(*, message_id: int, actor: User, text: object) -> Changed:
    """The sender replaces a message's text; the assistant's replies to it are marked
    `reply_to_edited`. Everyone in the conversation gets `message_edited`."""
    message, room = access_message(message_id=message_id, user=actor)
    refusal = edit_refusal(user_id=actor.pk, message=message)
    if refusal is not None:
        raise Forbidden(refusal)
    content, _ = message_clean(text=text)
    if content == message.content:
        return Changed(message, room.owner_id, mentions_of([message]).get(message.pk, []))
    _count_change(actor)
    conversation, seq, message = _locked(message)
    refusal = edit_refusal(user_id=actor.pk, message=message)
    if refusal is not None:
        raise Forbidden(refusal)
    message.content = content
    message.edited_at = timezone.now()
    message.change_seq = seq
    message.save(update_fields=["content", "edited_at", "change_seq"])
    before = _mentions_forget(message)
    mentioned = mentions_record(message=message, keys=mentioned_keys(content))
    # The replies the assistant already wrote answered the earlier text. (A reply still being
    # written is marked when it is saved: llm.replies.)
    replies = list(
        Message.objects.filter(ai_reply__trigger_id=message.pk, deleted_at__isnull=True)
        .order_by("id")
        .values_list("pk", flat=True)
    )
    if replies:
        Message.objects.filter(pk__in=replies).update(reply_to_edited=True, change_seq=seq)
    names = [name for _, name in mentioned]
    frame = MessageEditedFrame(
        message_id=message.pk,
        message=content,
        edited_at=message.edited_at.isoformat(),
        change_seq=seq,
        replies=replies,
        mentions=names,
    )
    publish_on_commit(frame_event(conversation.group, frame.model_dump()))
    if message.ai_session_id is None:
        after = [user_id for user_id, _ in mentioned]
        publish_on_commit(room_changed_event(message, mentioned_before=before, mentioned=after))
    logger.info("Message %s edited by user %s", message.pk, actor.pk)
    return Changed(message, room.owner_id, names)


@transaction.atomic
def message_delete(*, message_id: int, actor: User) -> Changed:
    """The sender or the room's owner deletes a message: its text is erased and its place kept
    as a tombstone. Everyone in the conversation gets `message_deleted`. Deleting a deleted
    message changes nothing."""
    message, room = access_message(message_id=message_id, user=actor)
    refusal = delete_refusal(user_id=actor.pk, message=message, owner_id=room.owner_id)
    if refusal is not None:
        raise Forbidden(refusal)
    if message.deleted_at is not None:
        return Changed(message, room.owner_id, [])
    _count_change(actor)
    conversation, seq, message = _locked(message)
    if message.deleted_at is not None:
        # Deleted while this waited: give the change number back.
        transaction.set_rollback(True)
        return Changed(message, room.owner_id, [])
    message.content = ""
    message.deleted_at = timezone.now()
    message.change_seq = seq
    message.save(update_fields=["content", "deleted_at", "change_seq"])
    before = _mentions_forget(message)
    frame = MessageDeletedFrame(message_id=message.pk, change_seq=seq)
    publish_on_commit(frame_event(conversation.group, frame.model_dump()))
    if message.ai_session_id is None:
        publish_on_commit(room_changed_event(message, mentioned_before=before, mentioned=[]))
    logger.info("Message %s deleted by user %s", message.pk, actor.pk)
    return Changed(message, room.owner_id, [])
