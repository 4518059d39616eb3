"""State changes of AI sessions and replies. Frames that follow a change leave from here,
after commit; the streaming itself is driven by `llm.generation`."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any
from uuid import UUID, uuid4

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import assistant_user
from chat.events import chat_message_frames
from chat.models import Message
from chat.selectors import access_room, message_by_client_id, room_is_member
from core import ratelimit
from core.errors import AiNotConfigured, AppError, Forbidden, NotFound
from core.events import control_event, frame_event, publish_on_commit
from core.groups import session_group
from core.ws import CLOSE_SESSION_ENDED
from llm import prices
from llm.events import AiError, AiSessionEnded, AiStreamEnd, UsageOut, frame
from llm.log import ai_debug, ai_error, ai_success
from llm.models import AiChatSession, AiReply, LlmUsage
from llm.providers import get_provider, model_name, provider_name
from llm.providers.base import ChatMessage, ChatRequest, Usage
from llm.selectors import access_session, can_end_session
from ops import metrics

logger = logging.getLogger(__name__)


class SessionInactive(AppError):
    status = 410
    code = "session_inactive"
    message = "This AI session has been deactivated; start a new one."


def session_start(*, user: User, room_id: UUID) -> AiChatSession:
    """Open an AI session in a room the user is a member of (SPEC 3.3)."""
    ai_debug("start_session requested by user %s for room %s", user.pk, room_id)
    room = access_room(room_id=room_id, user=user)
    if get_provider() is None:
        ai_error("start_session refused: the AI provider is not configured")
        raise AiNotConfigured()
    session = AiChatSession.objects.create(room=room, created_by=user, model=model_name())
    assistant_user()
    ai_success("AI session %s created in room %s (model %s)", session.pk, room.pk, session.model)
    return session


@transaction.atomic
def session_deactivate(*, session_id: UUID, actor: User) -> AiChatSession:
    """The room's owner, the session's creator or staff ends a session: pending replies are
    cancelled, a reply in progress is stopped, and its sockets get `ai_session_ended` and are
    closed with 4410, on every server process."""
    session = access_session(session_id=session_id, user=actor, staff_sees_all=True)
    if not session.is_active:
        return session
    if not can_end_session(user=actor, session=session):
        raise Forbidden("Only the room's owner or the session's creator can end this session.")
    session.is_active = False
    session.deactivated_at = timezone.now()
    session.deactivated_by = actor
    session.save(update_fields=["is_active", "deactivated_at", "deactivated_by"])
    AiReply.objects.filter(session=session, status=AiReply.Status.PENDING).update(
        status=AiReply.Status.CANCELLED, error_code=SessionInactive.code, finished_at=timezone.now()
    )
    group = session_group(session.pk)
    publish_on_commit(control_event(group, "stop"))
    publish_on_commit(frame_event(group, frame(AiSessionEnded(session_id=str(session.pk)))))
    publish_on_commit(control_event(group, "close", code=CLOSE_SESSION_ENDED))
    ai_success("AI session %s deactivated by user %s", session.pk, actor.pk)
    return session


def ai_message_post(
    *,
    session_id: UUID,
    sender: User,
    content: str,
    client_id: str | None,
    rate: str | None = None,
) -> tuple[Message, bool, dict[str, Any] | None]:
    """Save a member's message in an AI session and queue the assistant's reply to it.

    Returns the message, whether it is new, and (if new) its broadcast, for the caller to
    publish: this commits before returning, and the socket publishes from its event loop
    rather than holding a database thread until the loop gets round to it. A retry with a
    known `client_id` returns the stored message without counting against `rate` and queues
    nothing (one message, one provider call); a new message is counted against the sender's
    `rate` first (RateLimited when over it: nothing saved).
    """
    if client_id is not None:
        existing = message_by_client_id(
            sender=sender, client_id=client_id, room_id=None, session_id=session_id
        )
        if existing is not None:
            return existing, False, None
    if rate is not None:
        ratelimit.hit("llm", str(sender.pk), rate)
    try:
        with transaction.atomic():
            # Locking the session row makes messages of one session commit in id order, so
            # "message order" is one order for every process and every member.
            session = AiChatSession.objects.select_for_update().filter(pk=session_id).first()
            if session is None or not room_is_member(room_id=session.room_id, user=sender):
                raise NotFound("No such AI session.")
            if not session.is_active:
                raise SessionInactive()
            message = Message.objects.create(
                room_id=session.room_id,
                ai_session=session,
                sender=sender,
                content=content,
                client_id=client_id,
            )
            message.sender = sender
            AiReply.objects.create(session=session, trigger=message, requested_by=sender)
            transaction.on_commit(partial(metrics.record_message, "ai_session"))
            others, mine = chat_message_frames(message)
            event = frame_event(
                session_group(session.pk), others, sender_id=sender.pk, self_frame=mine
            )
    except IntegrityError:
        existing = (
            message_by_client_id(
                sender=sender, client_id=client_id, room_id=None, session_id=session_id
            )
            if client_id
            else None
        )
        if existing is None:
            raise
        return existing, False, None
    ai_debug("message %s saved in session %s; reply queued", message.pk, session_id)
    return message, True, event


@dataclass(frozen=True)
class ClaimedReply:
    reply_id: int
    stream_id: UUID
    session_id: UUID
    room_id: UUID
    user_id: int
    provider: str
    request: ChatRequest


def context_build(*, session: AiChatSession, trigger: Message) -> list[ChatMessage]:
    """The persona, the last LLM_HISTORY_LIMIT earlier messages of this session (oldest
    first; the assistant's as `assistant`, people's as `user` prefixed with who said it), then
    the new message. Nothing from other sessions or from room chat."""
    earlier = list(
        Message.objects.filter(ai_session=session)
        .exclude(pk=trigger.pk)
        .filter(created_at__lte=timezone.now())
        .select_related("sender")
        .order_by("-id")[: settings.LLM_HISTORY_LIMIT]
    )
    earlier.reverse()
    messages = [ChatMessage("system", settings.LLM_SYSTEM_PROMPT)]
    for m in [*earlier, trigger]:
        if m.sender.username == settings.AI_USERNAME:
            messages.append(ChatMessage("assistant", m.content))
        else:
            messages.append(ChatMessage("user", f"{m.sender.username}: {m.content}"))
    return messages


def _end_user_id(user_id: int) -> str:
    # The provider sees a stable, opaque id per user, never a name.
    return hashlib.sha256(f"{settings.SECRET_KEY}:{user_id}".encode()).hexdigest()[:32]


@transaction.atomic
def reply_claim_next(*, session_id: UUID) -> ClaimedReply | None:
    """Take the session's oldest pending reply (the caller holds the session lock).

    A reply still marked as streaming belongs to a process that died mid-reply: it is closed
    as interrupted first, keeping its last checkpoint.
    """
    for stale in AiReply.objects.select_for_update().filter(
        session_id=session_id, status=AiReply.Status.STREAMING
    ):
        _reply_close(
            reply=stale,
            text=stale.checkpoint,
            finish_reason="error",
            status=AiReply.Status.INTERRUPTED,
            error_code="interrupted",
            usage=None,
            ttft_ms=None,
            latency_ms=0,
            provider="",
        )
    # Only the reply row is locked (`of`): locking the joined rows too made a claim skip a
    # pending reply whenever its sender's row was locked by a claim in another session, and
    # the reply was then never generated.
    reply = (
        AiReply.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(session_id=session_id, status=AiReply.Status.PENDING)
        .select_related("session", "trigger", "trigger__sender")
        .order_by("trigger_id")
        .first()
    )
    if reply is None:
        return None
    session = reply.session
    provider = provider_name()
    if not session.is_active or provider is None:
        code = SessionInactive.code if not session.is_active else AiNotConfigured.code
        reply.status = AiReply.Status.CANCELLED
        reply.error_code = code
        reply.finished_at = timezone.now()
        reply.save(update_fields=["status", "error_code", "finished_at"])
        publish_on_commit(frame_event(session_group(session.pk), frame(AiError(code=code))))
        ai_error("reply %s not generated: %s", reply.pk, code)
        return None
    reply.status = AiReply.Status.STREAMING
    reply.stream_id = uuid4()
    reply.started_at = timezone.now()
    reply.save(update_fields=["status", "stream_id", "started_at"])
    request = ChatRequest(
        model=session.model,
        messages=context_build(session=session, trigger=reply.trigger),
        max_output_tokens=settings.LLM_MAX_OUTPUT_TOKENS,
        end_user=_end_user_id(reply.requested_by_id),
    )
    ai_debug(
        "reply %s claimed for session %s: %d context messages, model %s",
        reply.pk,
        session.pk,
        len(request.messages),
        request.model,
    )
    return ClaimedReply(
        reply_id=reply.pk,
        stream_id=reply.stream_id,
        session_id=session.pk,
        room_id=session.room_id,
        user_id=reply.requested_by_id,
        provider=provider,
        request=request,
    )


def reply_checkpoint(*, reply_id: int, text: str) -> None:
    AiReply.objects.filter(pk=reply_id, status=AiReply.Status.STREAMING).update(checkpoint=text)


STATUS_FOR_FINISH = {
    "stop": AiReply.Status.DONE,
    "length": AiReply.Status.DONE,
    "stopped": AiReply.Status.STOPPED,
    "error": AiReply.Status.FAILED,
}


@transaction.atomic
def reply_finish(
    *,
    reply_id: int,
    text: str,
    finish_reason: str,
    usage: Usage | None,
    error_code: str = "",
    error_detail: str = "",
    resets_at: str | None = None,
    ttft_ms: int | None,
    latency_ms: int,
    provider: str,
    called_provider: bool = True,
) -> Message | None:
    """Save the reply once, complete (or as far as it got), with its usage; then broadcast
    `ai_stream_end`, the final `chat_message` and, on failure, `ai_error`.

    `called_provider=False`: the reply was refused before any call (budget, paused key): no
    stream was started and no usage is recorded, only `ai_error` goes out."""
    reply = (
        AiReply.objects.select_for_update(of=("self",))
        .select_related("session", "trigger")
        .get(pk=reply_id)
    )
    if reply.status != AiReply.Status.STREAMING:
        # Already closed (e.g. as interrupted by another process after a lock expiry).
        return None
    return _reply_close(
        reply=reply,
        text=text,
        finish_reason=finish_reason,
        status=STATUS_FOR_FINISH[finish_reason],
        error_code=error_code,
        error_detail=error_detail,
        resets_at=resets_at,
        usage=usage,
        ttft_ms=ttft_ms,
        latency_ms=latency_ms,
        provider=provider,
        called_provider=called_provider,
    )


def _reply_close(
    *,
    reply: AiReply,
    text: str,
    finish_reason: str,
    status: str,
    error_code: str,
    usage: Usage | None,
    ttft_ms: int | None,
    latency_ms: int,
    provider: str,
    error_detail: str = "",
    resets_at: str | None = None,
    called_provider: bool = True,
) -> Message | None:
    session = reply.session
    message = None
    if text:
        message = Message.objects.create(
            room_id=session.room_id, ai_session=session, sender=assistant_user(), content=text
        )
        transaction.on_commit(partial(metrics.record_message, "ai_reply"))
    reply.status = status
    reply.finish_reason = "interrupted" if status == AiReply.Status.INTERRUPTED else finish_reason
    reply.error_code = error_code
    reply.reply = message
    reply.finished_at = timezone.now()
    reply.save(update_fields=["status", "finish_reason", "error_code", "reply", "finished_at"])
    group = session_group(session.pk)
    record = None
    if called_provider:
        record = usage_record(
            reply=reply,
            provider=provider,
            usage=usage,
            finish_reason=reply.finish_reason,
            error_code=error_code,
            ttft_ms=ttft_ms,
            latency_ms=latency_ms,
        )
        end = AiStreamEnd(
            stream_id=str(reply.stream_id),
            message_id=message.pk if message else None,
            finish_reason=finish_reason,  # type: ignore[arg-type]
            usage=usage_out(record),
        )
        publish_on_commit(frame_event(group, end.model_dump()))
        transaction.on_commit(partial(_observe, record=record, reply=reply, ttft_ms=ttft_ms))
    if message is not None:
        others, _ = chat_message_frames(message)
        publish_on_commit(frame_event(group, {**others, "finish_reason": reply.finish_reason}))
    if error_code:
        error = AiError(
            code=error_code,
            detail=error_detail or None,
            resets_at=resets_at,
        )
        publish_on_commit(frame_event(group, frame(error)))
        ai_error("reply %s of session %s failed: %s", reply.pk, session.pk, error_code)
    else:
        ai_success(
            "reply %s of session %s saved as message %s (%s, %s chars, %s tokens)",
            reply.pk,
            session.pk,
            message.pk if message else None,
            finish_reason,
            len(text),
            record.total_tokens if record and record.usage_known else "unknown",
        )
    return message


def _observe(*, record: LlmUsage, reply: AiReply, ttft_ms: int | None) -> None:
    """Prometheus figures of one provider call (after commit, so a rollback counts nothing)."""
    model = record.model
    outcome = reply.error_code or ("stopped" if reply.finish_reason == "stopped" else "ok")
    metrics.record_ai_request(model, outcome)
    metrics.add_tokens(model, record.prompt_tokens, record.completion_tokens)
    metrics.add_cost(model, record.cost_usd)
    if ttft_ms is not None:
        metrics.observe_ttft(model, ttft_ms / 1000)
    if reply.finished_at is not None:
        # From the member's message to the saved reply, waiting in the queue included.
        waited = reply.finished_at - reply.trigger.created_at
        metrics.observe_reply_latency(model, waited.total_seconds())


def usage_record(
    *,
    reply: AiReply,
    provider: str,
    usage: Usage | None,
    finish_reason: str,
    error_code: str,
    ttft_ms: int | None,
    latency_ms: int,
) -> LlmUsage:
    session = reply.session
    cost: Decimal | None = None
    if usage is not None:
        cost = prices.cost_usd(session.model, usage.prompt_tokens, usage.completion_tokens)
    return LlmUsage.objects.create(
        provider=provider or "unknown",
        model=session.model,
        user_id=reply.requested_by_id,
        session=session,
        room_id=session.room_id,
        reply=reply,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        total_tokens=usage.total_tokens if usage else None,
        usage_known=usage is not None,
        cost_usd=cost,
        time_to_first_token_ms=ttft_ms,
        latency_ms=latency_ms,
        finish_reason=finish_reason,
        error_code=error_code,
    )


def usage_out(record: LlmUsage) -> UsageOut:
    return UsageOut(
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        total_tokens=record.total_tokens,
        cost_usd=str(record.cost_usd) if record.cost_usd is not None else None,
        known=record.usage_known,
    )
