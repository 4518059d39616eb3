"""A reply knows its question (SPEC 10.2): what each reply says about itself (the message it
answers, the model, how it ended, its version among the answers to that question, what it
used), and the conversation's queue of questions being answered and waiting.

Reads and frames only; the state changes that use them are `llm.replies` (the pipeline) and
`llm.services` (regenerate, withdraw).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet

from chat.conversations import Conversation
from chat.events import ReplyUsageOut
from chat.models import Message
from core.events import frame_event, publish_on_commit
from llm import prices
from llm.events import AiQueue, QueuedQuestion
from llm.models import AiReply, LlmUsage

OPEN = (AiReply.Status.PENDING, AiReply.Status.STREAMING)
# What a question withdrawn by who asked it is marked with (its reply's error_code).
WITHDRAWN = "withdrawn"


def conversation_replies(conversation: Conversation) -> QuerySet[AiReply]:
    """Every reply of a conversation (a room's chat, or one AI session)."""
    if conversation.session_id is None:
        return AiReply.objects.filter(room_id=conversation.room_id, session__isnull=True)
    return AiReply.objects.filter(session_id=conversation.session_id)


# --- the queue -----------------------------------------------------------------------------


def queue_state(conversation: Conversation) -> AiQueue:
    """The question being answered, then those waiting, in the order they will be. A question
    deleted while it waits is not among them: its reply is cancelled when its turn comes
    (`llm.replies.reply_claim_next`)."""
    rows = (
        conversation_replies(conversation)
        .filter(status__in=OPEN)
        .order_by("id")
        .values_list("trigger_id", "status", "requested_by__username", "trigger__deleted_at")
    )
    generating = None
    pending = []
    for trigger_id, status, username, deleted_at in rows:
        if status == AiReply.Status.STREAMING:
            generating = trigger_id
        elif deleted_at is None:
            pending.append(QueuedQuestion(message_id=trigger_id, username=username))
    return AiQueue(generating=generating, pending=pending)


def queue_frame(conversation: Conversation) -> dict[str, Any]:
    # Not `llm.events.frame`: `generating` is sent as null when nothing is being answered.
    return queue_state(conversation).model_dump()


def queue_announce(conversation: Conversation) -> None:
    """Tell the conversation its queue once the current transaction commits (the state is
    read now, inside it, so it is the state that commits)."""
    publish_on_commit(frame_event(conversation.group, queue_frame(conversation)))


# --- what a reply says about itself --------------------------------------------------------


def reply_usage(record: LlmUsage | None) -> ReplyUsageOut | None:
    """One reply's usage from the record of its provider call (`estimated` when the provider
    reported none)."""
    if record is None:
        return None
    return ReplyUsageOut(
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        cost_usd=prices.usd_text(record.cost_usd),
        estimated=record.estimated,
    )


def _record_of(reply: AiReply) -> LlmUsage | None:
    try:
        return reply.usage
    except ObjectDoesNotExist:  # refused before any call, or its record was deleted
        return None


def reply_fields(
    reply: AiReply, *, record: LlmUsage | None, version: int, versions: int
) -> dict[str, Any]:
    """The fields an AI reply's `chat_message` and history item carry beside the message."""
    usage = reply_usage(record)
    return {
        "reply_to": reply.trigger_id,
        "model": record.model if record is not None else None,
        "finish_reason": reply.finish_reason or None,
        "version": version,
        "versions": versions,
        "usage": usage.model_dump() if usage is not None else None,
    }


def version_of(reply: AiReply) -> tuple[int, int]:
    """(version, versions) of a reply that has text: its place among the answers to its
    question that have text, oldest first, and how many there are."""
    answered = list(
        AiReply.objects.filter(trigger_id=reply.trigger_id, reply__isnull=False)
        .order_by("id")
        .values_list("id", flat=True)
    )
    return answered.index(reply.pk) + 1, len(answered)


def reply_details(messages: Sequence[Message]) -> Mapping[int, Mapping[str, Any]]:
    """The reply fields of the assistant's messages among `messages`, by message id, for
    history (chat.events.add_message_details): two queries for a page that has any, none
    for one that has not."""
    ai_ids = [m.pk for m in messages if m.sender.username == settings.AI_USERNAME]
    if not ai_ids:
        return {}
    replies = list(AiReply.objects.filter(reply_id__in=ai_ids).select_related("usage"))
    if not replies:
        return {}
    answered: dict[int, list[int]] = defaultdict(list)
    for trigger_id, reply_id in (
        AiReply.objects.filter(trigger_id__in={r.trigger_id for r in replies}, reply__isnull=False)
        .order_by("id")
        .values_list("trigger_id", "reply_id")
    ):
        answered[trigger_id].append(reply_id)
    details: dict[int, Mapping[str, Any]] = {}
    for reply in replies:
        if reply.reply_id is None:
            continue
        versions = answered[reply.trigger_id]
        details[reply.reply_id] = reply_fields(
            reply,
            record=_record_of(reply),
            version=versions.index(reply.reply_id) + 1,
            versions=len(versions),
        )
    return details
