"""The assistant's replies in the database: queued, claimed, checkpointed, finished.

Every state change of a reply is a function here, run in a database thread; `llm.generation`
drives them from the event loop and streams in between. A reply belongs to a conversation (a
room's chat or one AI session, `chat.conversations`) and is generated under that conversation's
lock, one at a time, in the order of the messages they answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from functools import partial
from uuid import UUID, uuid4

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from accounts.services import assistant_user
from chat.conversations import Conversation
from chat.events import chat_message_event
from chat.models import Message
from chat.order import message_append
from chat.workspace import room_activity_event
from core import metrics, ratelimit
from core.errors import (
    AiNotConfigured,
    AppError,
    BudgetExceeded,
    ProviderError,
    RateLimited,
    SessionInactive,
    error_frame,
)
from core.events import frame_event, publish_on_commit
from llm import budgets, personas, prices, threads, tokens
from llm.events import AiStreamEnd, UsageOut
from llm.log import ai_debug, ai_error, ai_success
from llm.models import AiChatSession, AiReply, LlmUsage
from llm.providers import provider_name
from llm.providers.base import ChatMessage, ChatRequest, Usage

# After the provider refuses the key, replies pause server-wide; one call a minute re-checks.
AUTH_PAUSE_KEY = "llm:auth-paused"
AUTH_PAUSE_SECONDS = 60
PAUSED_DETAIL = (
    "AI replies are paused: the provider refused the API key. "
    "They resume within a minute of the key working again."
)


# The error code of a queued reply cancelled because its question was deleted.
QUESTION_DELETED = "message_deleted"


# A process that found replies not paused takes them as not paused for this long without
# asking the cache again: the check was a Redis round trip in every reply's start, and a pause
# set by another process reaches this one within the second (a call made meanwhile is refused
# by the provider and pauses this process too).
PAUSE_RECHECK_SECONDS = 1.0
_not_paused_until = 0.0


def replies_pause() -> None:
    """Pause every reply for a minute (the provider refused the key)."""
    global _not_paused_until
    _not_paused_until = 0.0
    cache.set(AUTH_PAUSE_KEY, 1, timeout=AUTH_PAUSE_SECONDS)


def paused_refusal() -> ProviderError | None:
    """The refusal of any provider call while replies are paused, else None."""
    global _not_paused_until
    now = time.monotonic()
    if now < _not_paused_until:
        return None
    if cache.get(AUTH_PAUSE_KEY) is None:
        _not_paused_until = now + PAUSE_RECHECK_SECONDS
        return None
    return ProviderError("upstream_auth", PAUSED_DETAIL)


def ai_rate_hit(user: User) -> None:
    """Count one request to the assistant against the user's LLM_USER_RATE (raises
    RateLimited, counted as a refusal)."""
    try:
        ratelimit.hit("llm", str(user.pk), settings.LLM_USER_RATE)
    except RateLimited:
        metrics.record_refusal("rate_limited")
        raise


def reply_enqueue(*, conversation: Conversation, trigger: Message, requested_by: User) -> AiReply:
    """Queue the assistant's reply to `trigger` (inside the caller's transaction)."""
    return AiReply.objects.create(
        room_id=conversation.room_id,
        session_id=conversation.session_id,
        trigger=trigger,
        requested_by=requested_by,
    )


@dataclass(frozen=True)
class ClaimedReply:
    reply_id: int
    stream_id: UUID
    conversation: Conversation
    user_id: int
    provider: str
    request: ChatRequest
    reply_to: int  # the message it answers
    # The group whose quota the call is charged to (set with its reservation).
    quota_group_id: int | None = None


@dataclass(frozen=True)
class ReplyStart:
    """A claimed reply whose budget is reserved: it may call the provider."""

    claim: ClaimedReply
    reservation: budgets.Reservation


@dataclass(frozen=True)
class ReplyRefused:
    """A claimed reply that may not call the provider, and why."""

    claim: ClaimedReply
    error: AppError


def _queue(conversation: Conversation) -> dict[str, object]:
    """The filter of a conversation's replies."""
    if conversation.session_id is None:
        return {"room_id": conversation.room_id, "session__isnull": True}
    return {"session_id": conversation.session_id}


def context_build(
    *, conversation: Conversation, trigger: Message, system_prompt: str
) -> list[ChatMessage]:
    """The persona (`system_prompt`), the last LLM_HISTORY_LIMIT messages of the conversation
    that came before `trigger` (oldest first; the assistant's as `assistant`, people's as
    `user` prefixed with who said it), then `trigger` itself. Nothing from other
    conversations, nothing deleted, no notes about the conversation (a model switched...),
    edited messages as they read now, and of an earlier question answered more than once
    only its latest answer.

    The history is also cut to what fits LLM_CONTEXT_TOKENS (SPEC 10.5), counted with the
    estimate the budgets use (`llm.tokens`): the oldest go first; the persona and `trigger`
    are always kept, even when they alone are over it. Whoever asks pays for the call, shared
    history included, so this bound is also what another member's long messages can add to
    one question's cost.

    "Before" is the order of the conversation as its questions were asked: a reply counts as
    said right after the question it answers, so the reply to an earlier question that was
    still queued when `trigger` arrived is in its context, and what was asked after `trigger`
    is not (its answer is the same whenever it is generated, and asked again later it gets
    the context it had the first time)."""
    anchor = Coalesce("ai_reply__trigger_id", "id")
    newer_answer = AiReply.objects.filter(
        trigger_id=OuterRef("ai_reply__trigger_id"),
        reply__isnull=False,
        pk__gt=OuterRef("ai_reply__pk"),
    )
    earlier = (
        Message.objects.filter(
            room_id=conversation.room_id,
            ai_session_id=conversation.session_id,
            note__isnull=True,
            deleted_at__isnull=True,
        )
        .annotate(anchor=anchor)
        .filter(anchor__lt=trigger.pk)
        .filter(~Exists(newer_answer))
        .select_related("sender")
        .order_by("-anchor", "-id")[: settings.LLM_HISTORY_LIMIT]
    )
    persona = ChatMessage("system", system_prompt)
    question = _context_message(trigger)
    room = settings.LLM_CONTEXT_TOKENS - tokens.prompt_tokens([persona, question])
    history: list[ChatMessage] = []
    for m in earlier:  # newest first
        message = _context_message(m)
        room -= tokens.message_tokens(message)
        if room < 0:
            break
        history.append(message)
    history.reverse()
    return [persona, *history, question]


def _context_message(message: Message) -> ChatMessage:
    if message.sender.username == settings.AI_USERNAME:
        return ChatMessage("assistant", message.content)
    return ChatMessage("user", f"{message.sender.username}: {message.content}")


def end_user_id(user_id: int) -> str:
    # The provider sees a stable, opaque id per user, never a name.
    return hashlib.sha256(f"{settings.SECRET_KEY}:{user_id}".encode()).hexdigest()[:32]


def reply_start_next(*, conversation: Conversation) -> ReplyStart | ReplyRefused | None:
    """Claim the conversation's next pending reply, check that replies are not paused and
    reserve its budget, in one trip to a database thread (each trip waits for the event loop
    twice). None when nothing is pending."""
    claim = reply_claim_next(conversation=conversation)
    if claim is None:
        return None
    paused = paused_refusal()
    if paused is not None:
        return ReplyRefused(claim, paused)
    try:
        reservation = budgets.budget_reserve(
            user_id=claim.user_id, room_id=claim.conversation.room_id, request=claim.request
        )
    except BudgetExceeded as exceeded:
        return ReplyRefused(claim, exceeded)
    if reservation.max_output_tokens < claim.request.max_output_tokens:
        ai_debug(
            "reply %s asks for %d output tokens: what its budget has left",
            claim.reply_id,
            reservation.max_output_tokens,
        )
    request = dataclasses.replace(claim.request, max_output_tokens=reservation.max_output_tokens)
    claim = dataclasses.replace(claim, request=request, quota_group_id=reservation.group_id)
    return ReplyStart(claim, reservation)


@transaction.atomic
def reply_claim_next(*, conversation: Conversation) -> ClaimedReply | None:
    """Take the conversation's oldest pending reply (the caller holds its lock).

    A reply still marked as streaming belongs to a process that died mid-reply: it is closed
    as interrupted first, keeping its last checkpoint. A reply whose question was deleted
    while it waited is cancelled when its turn comes.
    """
    while True:
        reply = _queue_head(conversation)
        if reply is None:
            return None
        if reply.status == AiReply.Status.STREAMING:
            # Its request is not kept: the estimate rebuilds what it was sent, and counts the
            # most output it may have asked for.
            _reply_close(
                reply=reply,
                text=reply.checkpoint,
                finish_reason="error",
                status=AiReply.Status.INTERRUPTED,
                error=None,
                usage=None,
                ttft_ms=None,
                latency_ms=0,
                provider="",
                request=_request(conversation, reply),
            )
        elif reply.trigger.deleted_at is not None:
            # A question deleted while it waited is not answered (the queue stopped showing
            # it when it was deleted: `threads.queue_state`).
            reply.status = AiReply.Status.CANCELLED
            reply.error_code = QUESTION_DELETED
            reply.finished_at = timezone.now()
            reply.save(update_fields=["status", "error_code", "finished_at"])
        else:
            break
    session = reply.session
    provider = provider_name()
    refusal: AppError | None = None
    if session is not None and not session.is_active:
        refusal = SessionInactive()
    if refusal is not None or provider is None:
        refusal = refusal or AiNotConfigured()
        reply.status = AiReply.Status.CANCELLED
        reply.error_code = refusal.code
        reply.finished_at = timezone.now()
        reply.save(update_fields=["status", "error_code", "finished_at"])
        publish_on_commit(frame_event(conversation.group, error_frame(refusal, ai=True)))
        threads.queue_announce(conversation)
        ai_error("reply %s not generated: %s", reply.pk, refusal.code)
        return None
    reply.status = AiReply.Status.STREAMING
    reply.stream_id = uuid4()
    reply.started_at = timezone.now()
    reply.save(update_fields=["status", "stream_id", "started_at"])
    threads.queue_announce(conversation)
    request = _request(conversation, reply)
    ai_debug(
        "reply %s claimed in %s: %d context messages, model %s",
        reply.pk,
        conversation,
        len(request.messages),
        request.model,
    )
    return ClaimedReply(
        reply_id=reply.pk,
        stream_id=reply.stream_id,
        conversation=conversation,
        user_id=reply.requested_by_id,
        provider=provider,
        request=request,
        reply_to=reply.trigger_id,
    )


def _queue_head(conversation: Conversation) -> AiReply | None:
    """The conversation's open reply to deal with first, locked: a stale streaming one (there
    is at most one at a time), else the oldest pending one, in the order they were asked (a
    message's reply is queued in the transaction that stores it, under its conversation's
    lock; a question asked again when it is asked again). One query serves both: "streaming"
    sorts after "pending", so descending status puts a stale one first.

    Only the reply row is locked (`of`): locking the joined rows too made a claim skip a
    pending reply whenever its sender's row was locked by a claim in another conversation,
    and the reply was then never generated."""
    return (
        AiReply.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(
            status__in=(AiReply.Status.PENDING, AiReply.Status.STREAMING), **_queue(conversation)
        )
        .select_related("session", "session__persona", "trigger", "trigger__sender")
        .order_by("-status", "id")
        .first()
    )


def _request(conversation: Conversation, reply: AiReply) -> ChatRequest:
    """What the provider is sent for `reply`: its conversation's context up to its question,
    with the persona and model of its session (or of room chat)."""
    steering = _steering(reply.session)
    return ChatRequest(
        model=steering.model,
        messages=context_build(
            conversation=conversation, trigger=reply.trigger, system_prompt=steering.system_prompt
        ),
        max_output_tokens=settings.LLM_MAX_OUTPUT_TOKENS,
        end_user=end_user_id(reply.requested_by_id),
    )


def _steering(session: AiChatSession | None) -> personas.Steering:
    """The persona and model a reply is generated with: its session's, or in room chat the
    default persona's."""
    return personas.session_steering(session) if session is not None else personas.room_steering()


def reply_checkpoint(*, reply_id: int, text: str) -> None:
    """Keep the text streamed so far, so a reply whose process dies keeps what it said."""
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
    claim: ClaimedReply,
    text: str,
    finish_reason: str,
    usage: Usage | None,
    error: AppError | None = None,
    ttft_ms: int | None,
    latency_ms: int,
    called_provider: bool = True,
) -> LlmUsage | None:
    """Save the reply once, complete (or as far as it got), with its usage; then announce
    `ai_stream_end`, the final `chat_message` and, on failure, `ai_error`. Returns the usage
    record, which the budgets are settled to.

    `called_provider=False`: the reply was refused before any call (budget, paused key): no
    stream was started and no usage is recorded, only `ai_error` goes out."""
    reply = (
        AiReply.objects.select_for_update(of=("self",))
        .select_related("session", "trigger")
        .filter(pk=claim.reply_id)
        .first()
    )
    if reply is None:
        # Its room was deleted while it was written (chat.services.room_delete): nobody is
        # left to read it, but the call cost what it cost.
        if not called_provider:
            return None
        return call_record(
            provider=claim.provider,
            request=claim.request,
            text=text,
            usage=usage,
            user_id=claim.user_id,
            room_id=None,
            quota_group_id=claim.quota_group_id,
            ttft_ms=ttft_ms,
            latency_ms=latency_ms,
            finish_reason=finish_reason,
            error_code="room_deleted",
        )
    if reply.status != AiReply.Status.STREAMING:
        # Already closed (e.g. as interrupted by another process after a lock expiry).
        return None
    return _reply_close(
        reply=reply,
        text=text,
        finish_reason=finish_reason,
        status=STATUS_FOR_FINISH[finish_reason],
        error=error,
        usage=usage,
        ttft_ms=ttft_ms,
        latency_ms=latency_ms,
        provider=claim.provider,
        request=claim.request,
        quota_group_id=claim.quota_group_id,
        called_provider=called_provider,
    )


def _reply_close(
    *,
    reply: AiReply,
    text: str,
    finish_reason: str,
    status: str,
    error: AppError | None,
    usage: Usage | None,
    ttft_ms: int | None,
    latency_ms: int,
    provider: str,
    request: ChatRequest,
    quota_group_id: int | None = None,
    called_provider: bool = True,
) -> LlmUsage | None:
    conversation = Conversation(room_id=reply.room_id, session_id=reply.session_id)
    stored = None
    message = None
    if text:
        stored = message_append(conversation=conversation, sender=assistant_user(), content=text)
        message = stored.message
        # The question's text when the context was built is what this reply answers; read
        # under the conversation's lock, which an edit takes too.
        if (
            reply.started_at is not None
            and Message.objects.filter(
                pk=reply.trigger_id, edited_at__gte=reply.started_at
            ).exists()
        ):
            message.reply_to_edited = True
            message.save(update_fields=["reply_to_edited"])
        transaction.on_commit(partial(metrics.record_message, "ai_reply"))
    interrupted = status == AiReply.Status.INTERRUPTED
    reply.status = status
    reply.finish_reason = "interrupted" if interrupted else finish_reason
    reply.error_code = "interrupted" if interrupted else (error.code if error else "")
    reply.reply = message
    reply.finished_at = timezone.now()
    reply.save(update_fields=["status", "finish_reason", "error_code", "reply", "finished_at"])
    group = conversation.group
    record = None
    if called_provider:
        record = usage_record(
            reply=reply,
            provider=provider,
            request=request,
            text=text,
            usage=usage,
            quota_group_id=quota_group_id,
            ttft_ms=ttft_ms,
            latency_ms=latency_ms,
        )
        end = AiStreamEnd(
            stream_id=str(reply.stream_id),
            message_id=message.pk if message else None,
            finish_reason=finish_reason,  # type: ignore[arg-type]
            usage=usage_out(record),
            reply_to=reply.trigger_id,
            model=request.model,
        )
        publish_on_commit(frame_event(group, end.model_dump()))
        transaction.on_commit(partial(_observe, record=record, reply=reply, ttft_ms=ttft_ms))
    if stored is not None:
        version, versions = threads.version_of(reply)
        fields = threads.reply_fields(reply, record=record, version=version, versions=versions)
        publish_on_commit(
            chat_message_event(
                group,
                stored.message,
                previous_id=stored.previous_id,
                owner_id=stored.owner_id,
                extra=fields,
            )
        )
        if conversation.session_id is None:
            # The assistant's text is model output, not a member's word: it mentions nobody,
            # so a reply that writes "@someone" cannot be made to ping people.
            publish_on_commit(room_activity_event(stored.message, []))
    threads.queue_announce(conversation)
    if error is not None:
        publish_on_commit(frame_event(group, error_frame(error, ai=True)))
        ai_error("reply %s in %s failed: %s", reply.pk, conversation, error.code)
    else:
        ai_success(
            "reply %s in %s saved as message %s (%s, %s chars, %s tokens)",
            reply.pk,
            conversation,
            message.pk if message else None,
            reply.finish_reason,
            len(text),
            f"{record.total_tokens}{' estimated' if record.estimated else ''}" if record else "no",
        )
    return record


def call_observe(record: LlmUsage, *, error_code: str, finish_reason: str) -> None:
    """Prometheus figures every provider call adds: one request by outcome (its error code,
    `stopped` or `ok`), its tokens and its cost."""
    outcome = error_code or ("stopped" if finish_reason == "stopped" else "ok")
    metrics.record_ai_request(record.model, outcome)
    metrics.add_tokens(record.model, record.prompt_tokens, record.completion_tokens)
    metrics.add_cost(record.model, record.cost_usd)


def _observe(*, record: LlmUsage, reply: AiReply, ttft_ms: int | None) -> None:
    """Prometheus figures of one provider call (after commit, so a rollback counts nothing)."""
    model = record.model
    call_observe(record, error_code=reply.error_code, finish_reason=reply.finish_reason)
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
    request: ChatRequest,
    text: str,
    usage: Usage | None,
    quota_group_id: int | None = None,
    ttft_ms: int | None,
    latency_ms: int,
) -> LlmUsage:
    """The usage record of a reply's provider call (`call_record`)."""
    return call_record(
        provider=provider,
        request=request,
        text=text,
        usage=usage,
        user_id=reply.requested_by_id,
        room_id=reply.room_id,
        session_id=reply.session_id,
        reply=reply,
        quota_group_id=quota_group_id,
        ttft_ms=ttft_ms,
        latency_ms=latency_ms,
        finish_reason=reply.finish_reason,
        error_code=reply.error_code,
    )


def call_record(
    *,
    provider: str,
    request: ChatRequest,
    text: str,
    usage: Usage | None,
    user_id: int,
    room_id: UUID | None,
    session_id: UUID | None = None,
    reply: AiReply | None = None,
    quota_group_id: int | None = None,
    ttft_ms: int | None,
    latency_ms: int,
    finish_reason: str,
    error_code: str = "",
) -> LlmUsage:
    """What one provider call used and cost (SPEC 7.4, 11.1), a reply's or a summary's: the
    provider's own figures, or, when it gave none, an estimate flagged as such (`call_usage`):
    the prompt as it was sent and the completion from the text received, never more output
    than the call asked for (so the estimate stays within what was reserved for it)."""
    usage, estimated = call_usage(request=request, text=text, usage=usage)
    return LlmUsage.objects.create(
        provider=provider or "unknown",
        model=request.model,
        user_id=user_id,
        session_id=session_id,
        room_id=room_id,
        reply=reply,
        quota_group_id=quota_group_id,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        estimated=estimated,
        cost_usd=prices.cost_usd(request.model, usage.prompt_tokens, usage.completion_tokens),
        time_to_first_token_ms=ttft_ms,
        latency_ms=latency_ms,
        finish_reason=finish_reason,
        error_code=error_code,
    )


def call_usage(*, request: ChatRequest, text: str, usage: Usage | None) -> tuple[Usage, bool]:
    """A call's usage and whether it is estimated: the provider's figures, or the prompt as it
    was sent and the completion from the text received, never more output than the call asked
    for."""
    if usage is not None:
        return usage, False
    prompt = tokens.prompt_tokens(request.messages)
    completion = min(tokens.completion_tokens(text), request.max_output_tokens)
    return Usage(prompt, completion, prompt + completion), True


def unsaved_usage_out(*, request: ChatRequest, text: str, usage: Usage | None) -> UsageOut:
    """The figures of a call whose record could not be saved, as `usage_out` shows a record."""
    figures, estimated = call_usage(request=request, text=text, usage=usage)
    cost = prices.cost_usd(request.model, figures.prompt_tokens, figures.completion_tokens)
    return UsageOut(
        prompt_tokens=figures.prompt_tokens,
        completion_tokens=figures.completion_tokens,
        total_tokens=figures.total_tokens,
        cost_usd=prices.usd_text(cost),
        estimated=estimated,
    )


def usage_out(record: LlmUsage) -> UsageOut:
    """One call's figures as every frame and page shows them."""
    return UsageOut(
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        total_tokens=record.total_tokens,
        cost_usd=prices.usd_text(record.cost_usd),
        estimated=record.estimated,
    )
