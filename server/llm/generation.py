"""Generating replies: a task of the server process, not of the socket that asked.

`kick(conversation)` makes sure this process drains the conversation's queue of pending
replies. Draining holds the conversation's lock (`llm.streams.conversation_lock`), so its
replies are generated one at a time and in message order even when members sit on different
processes; whichever process holds the lock generates every pending reply, and a process that
queued a reply waits for the lock, so none is left behind.

This module orchestrates only: the database work of a reply is `llm.replies`, run in database
threads between the awaits here. A reply streams through the channel layer to everyone in the
conversation: `ai_thinking`, `ai_stream_start`, coalesced `ai_stream_delta`s (a token that
arrives 50 ms or more after the last flush goes out at once, so the first token is not held
back; tokens closer together are gathered for up to 50 ms or 20 characters, so a fast model
does not cost one layer message per token), then `ai_stream_end` and the final `chat_message`
once the reply is saved. A `stop` control event on the conversation's group (from any member,
on any process) ends the stream within one event-loop turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from chat.conversations import Conversation
from core.db import db_async
from core.errors import AppError, InternalError, ProviderError, app_error_for, error_frame
from core.events import apublish, apublish_all, frame_event
from core.hub import get_hub
from llm import budgets, replies, selectors, streams
from llm.events import AiStreamDelta, AiStreamEnd, AiStreamStart, AiThinking, frame
from llm.log import ai_debug, ai_error
from llm.providers import stream_reply
from llm.providers.base import Finished, TextDelta, Usage
from llm.replies import ClaimedReply, ReplyRefused, ReplyStart

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.05
FLUSH_CHARS = 20
CHECKPOINT_SECONDS = 1.5


@dataclass(eq=False)
class ReplyRun:
    """One reply being generated; also a hub subscriber of its conversation's group, to hear
    `stop` (and the end of the session) from any process."""

    claim: ClaimedReply
    user_id: int = 0  # never a sender: the hub's is_self variant never applies
    text: str = ""
    pending: list[str] = field(default_factory=list)
    pending_chars: int = 0
    index: int = 0
    finished: Finished | None = None
    first_token_at: float | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    flushed_at: float = 0.0
    started: str = ""

    def deliver(self, text: str, meta: dict[str, Any] | None = None) -> None:
        """Frames are for sockets; the run only listens for control events."""

    def control(self, action: str, params: dict[str, Any]) -> None:
        if action in ("stop", "close"):
            self.stop.set()

    @property
    def conversation(self) -> Conversation:
        return self.claim.conversation

    def snapshot(self) -> streams.Snapshot:
        return streams.Snapshot(
            stream_id=str(self.claim.stream_id),
            text=self.text,
            index=self.index,
            timestamp=self.started,
            reply_to=self.claim.reply_to,
            model=self.claim.request.model,
        )

    async def flush(self) -> None:
        # Shielded: a flush cancelled half-way (the flusher and the pump are cancelled when a
        # reply ends or is stopped) would have taken text from `pending` without publishing
        # it, and members would miss a delta. The next flush waits for this one on the lock.
        # With nothing pending and no flush under way there is nothing to wait for: the
        # flusher's every 50 ms per reply then costs no task.
        if not self.pending and not self.flush_lock.locked():
            return
        await asyncio.shield(self._flush())

    async def _flush(self) -> None:
        async with self.flush_lock:
            if not self.pending:
                return
            delta = "".join(self.pending)
            self.pending.clear()
            self.pending_chars = 0
            self.index += 1
            self.text += delta
            stream_id = str(self.claim.stream_id)
            # The snapshot first: a socket that reads it has then seen every delta up to it.
            await streams.snapshot_set(self.conversation, self.snapshot())
            event = frame_event(
                self.conversation.group,
                frame(AiStreamDelta(stream_id=stream_id, index=self.index, delta=delta)),
                meta={"stream_id": stream_id, "index": self.index},
            )
            await apublish(event)
            # From the end of the flush: a slow flush does not make every token that queued up
            # behind it go out on its own.
            self.flushed_at = time.monotonic()


class Generator:
    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.draining: dict[Conversation, bool] = {}
        self.runs: dict[Conversation, ReplyRun] = {}
        # Set while the process shuts down: no new reply is started.
        self.stopping = False

    def kick(self, conversation: Conversation) -> None:
        """Make sure this process generates the conversation's pending replies."""
        if conversation in self.draining:
            self.draining[conversation] = True  # look again before letting go
            return
        self.draining[conversation] = False
        task = asyncio.create_task(self._drain(conversation), name=f"drain-{conversation}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _drain(self, conversation: Conversation) -> None:
        try:
            while True:
                async with streams.conversation_lock(conversation):
                    while not self.stopping:
                        start = await db_async(replies.reply_start_next)(conversation=conversation)
                        if start is None:
                            break
                        await self._generate(start)
                if self.stopping or not self.draining.get(conversation):
                    break
                self.draining[conversation] = False
        except Exception:
            ai_error("generation loop of %s failed", conversation)
            logger.exception("Generation loop of %s failed", conversation)
        finally:
            self.draining.pop(conversation, None)

    async def _generate(self, start: ReplyStart | ReplyRefused) -> None:
        if isinstance(start, ReplyRefused):
            # Refused before any provider call: the member's message stays, `ai_error` says why.
            await db_async(replies.reply_finish)(
                claim=start.claim,
                text="",
                finish_reason="error",
                usage=None,
                error=start.error,
                ttft_ms=None,
                latency_ms=0,
                called_provider=False,
            )
            return
        charge: budgets.Charge | None = None
        try:
            charge = await self._stream(start.claim)
        finally:
            # Settled whatever happened on the way, to what was recorded (the provider's
            # figures or the estimate): a reservation left standing would count against the
            # budget until its counter expired. With no record it stays as the charge.
            await db_async(budgets.budget_settle)(reservation=start.reservation, charge=charge)

    async def _stream(self, claim: ClaimedReply) -> budgets.Charge | None:
        """Stream one claimed reply to everyone and save it; what it was charged."""
        run = ReplyRun(claim=claim, started=timezone.now().isoformat())
        hub = get_hub()
        group = claim.conversation.group
        await hub.join(group, run)
        self.runs[claim.conversation] = run
        t0 = time.monotonic()
        error: AppError | None = None
        stopped = False
        try:
            thinking = AiThinking(reply_to=claim.reply_to, model=claim.request.model)
            await apublish(frame_event(group, frame(thinking)))
            await streams.snapshot_set(claim.conversation, run.snapshot())
            start = AiStreamStart(
                stream_id=str(claim.stream_id),
                timestamp=run.started,
                reply_to=claim.reply_to,
                model=claim.request.model,
            )
            await apublish(frame_event(group, frame(start)))
            ai_debug("calling provider %s for reply %s", claim.provider, claim.reply_id)
            pump = asyncio.create_task(self._pump(run, t0))
            flusher = asyncio.create_task(self._flush_periodically(run))
            stop_wait = asyncio.create_task(run.stop.wait())
            try:
                await asyncio.wait({pump, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not pump.done():
                    stopped = True
                    pump.cancel()
                stop_wait.cancel()
                flusher.cancel()
                for task in (pump, stop_wait, flusher):
                    with contextlib.suppress(asyncio.CancelledError):
                        try:
                            await task
                        except ProviderError as exc:
                            error = exc
            await run.flush()
        except Exception:
            logger.exception("Reply %s failed", claim.reply_id)
            error = InternalError("The reply failed on this server; it has been logged.")
        finally:
            self.runs.pop(claim.conversation, None)
            await hub.leave(group, run)
            with contextlib.suppress(Exception):
                await streams.snapshot_clear(claim.conversation)
        if error is not None and error.code == "upstream_auth":
            await db_async(replies.replies_pause)()
        try:
            return await self._finish(run, t0, error=error, stopped=stopped)
        except Exception as exc:
            # The reply could not be saved (the database is down, say): members still learn
            # that the stream ended and why, rather than waiting on deltas that stopped. The
            # reply stays marked as streaming, so the next process to drain this conversation
            # closes it as interrupted with its last checkpoint.
            failure = app_error_for(exc, where=f"saving reply {claim.reply_id}")
            end = AiStreamEnd(
                stream_id=str(claim.stream_id),
                message_id=None,
                finish_reason="error",
                usage=replies.unsaved_usage_out(
                    request=claim.request,
                    text=run.text,
                    usage=run.finished.usage if run.finished else None,
                ),
                reply_to=claim.reply_to,
                model=claim.request.model,
            )
            await apublish_all(
                [
                    frame_event(group, end.model_dump()),
                    frame_event(group, error_frame(failure, ai=True)),
                ]
            )
            return None

    async def _pump(self, run: ReplyRun, t0: float) -> None:
        async with stream_reply(run.claim.provider, run.claim.request) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    if run.first_token_at is None:
                        run.first_token_at = time.monotonic()
                        ai_debug(
                            "first token of reply %s after %.0f ms",
                            run.claim.reply_id,
                            (run.first_token_at - t0) * 1000,
                        )
                    run.pending.append(event.text)
                    run.pending_chars += len(event.text)
                    if (
                        run.pending_chars >= FLUSH_CHARS
                        or time.monotonic() - run.flushed_at >= FLUSH_SECONDS
                    ):
                        await run.flush()
                else:
                    run.finished = event

    async def _flush_periodically(self, run: ReplyRun) -> None:
        last_checkpoint = time.monotonic()
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await run.flush()
            if time.monotonic() - last_checkpoint >= CHECKPOINT_SECONDS:
                last_checkpoint = time.monotonic()
                await db_async(replies.reply_checkpoint)(reply_id=run.claim.reply_id, text=run.text)

    async def _finish(
        self, run: ReplyRun, t0: float, *, error: AppError | None, stopped: bool
    ) -> budgets.Charge | None:
        usage: Usage | None = None
        if error is not None:
            finish_reason = "error"
        elif stopped or run.finished is None:
            finish_reason = "stopped"
        else:
            finish_reason = run.finished.finish_reason
            usage = run.finished.usage
        ttft = round((run.first_token_at - t0) * 1000) if run.first_token_at else None
        record = await db_async(replies.reply_finish)(
            claim=run.claim,
            text=run.text,
            finish_reason=finish_reason,
            usage=usage,
            error=error,
            ttft_ms=ttft,
            latency_ms=round((time.monotonic() - t0) * 1000),
        )
        return budgets.Charge.of(record) if record is not None else None

    async def resume(self) -> int:
        """Generate the replies a stopped or killed process left behind (at start-up).

        Conversations with pending replies, or with one still marked as streaming, are drained
        as usual: under their lock, so a reply another live process is generating is left to
        it, and one whose process died is closed as interrupted with its last checkpoint.
        """
        conversations = await db_async(selectors.conversations_with_unfinished_replies)()
        for conversation in conversations:
            self.kick(conversation)
        if conversations:
            ai_debug("resuming replies of %d conversation(s)", len(conversations))
        return len(conversations)

    async def shutdown(self, grace: float) -> None:
        """Let replies in flight finish for up to `grace` seconds, then stop the rest (their
        text so far is saved, as when a member stops them). Replies not yet started stay
        queued for the next process to resume."""
        self.stopping = True
        if not self.tasks:
            return
        ai_debug("shutting down: waiting up to %.0f s for %d reply task(s)", grace, len(self.tasks))
        _, pending = await asyncio.wait(set(self.tasks), timeout=grace)
        if not pending:
            return
        for run in list(self.runs.values()):
            run.stop.set()
        _, still = await asyncio.wait(pending, timeout=2)
        for task in still:
            task.cancel()


_generators: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Generator] = (
    weakref.WeakKeyDictionary()
)


def get_generator() -> Generator:
    loop = asyncio.get_running_loop()
    generator = _generators.get(loop)
    if generator is None:
        generator = _generators[loop] = Generator()
    return generator


# Within the 10 s a process manager usually allows between SIGTERM and SIGKILL.
SHUTDOWN_GRACE_SECONDS = 7.0


async def resume_replies() -> None:
    await get_generator().resume()


async def stop_replies() -> None:
    await get_generator().shutdown(SHUTDOWN_GRACE_SECONDS)
