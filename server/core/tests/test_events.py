"""How committed events leave (core.events): from the event loop for a socket's call, in
order, even when the call raised or its caller went away."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from channels.layers import channel_layers
from django.db import transaction
from django.test import override_settings

from core.db import db_async
from core.events import frame_event, publish_on_commit
from core.layers import InMemoryChannelLayer

pytestmark = pytest.mark.django_db(transaction=True)


class RecordingLayer(InMemoryChannelLayer):
    """The in-memory layer, noting which thread published each message."""

    sent: list[tuple[int, dict[str, Any]]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        RecordingLayer.sent.append((threading.get_ident(), message))
        await super().group_send(group, message)


@pytest.fixture
def recorded():
    RecordingLayer.sent = []
    backend = {"default": {"BACKEND": f"{__name__}.RecordingLayer"}}
    kept = dict(channel_layers.backends)
    with override_settings(CHANNEL_LAYERS=backend):
        yield RecordingLayer.sent
    # Leaving the override drops every layer, and a fresh one would be made on next use; but
    # this process's hub keeps listening on the layer it started with, so later tests' events
    # would go where no one listens. Give the process its layer back.
    channel_layers.backends = kept


def _announce(*texts: str, fail: bool = False) -> str:
    """A service: each text committed in its own transaction and announced after commit."""
    for text in texts:
        with transaction.atomic():
            publish_on_commit(frame_event("g", {"type": "t", "text": text}))
    if fail:
        raise RuntimeError("after committing")
    return "done"


def _texts(recorded: list[tuple[int, dict[str, Any]]]) -> list[str]:
    return [message["frame"]["text"] for _, message in recorded]


async def test_a_sockets_call_publishes_from_the_loop_in_commit_order(recorded):
    loop_thread = threading.get_ident()
    assert await db_async(_announce)("one", "two", "three") == "done"
    assert _texts(recorded) == ["one", "two", "three"]
    assert {thread for thread, _ in recorded} == {loop_thread}


async def test_what_committed_before_a_failure_is_still_published(recorded):
    with pytest.raises(RuntimeError, match="after committing"):
        await db_async(_announce)("kept", fail=True)
    assert _texts(recorded) == ["kept"]


async def test_a_caller_that_leaves_does_not_lose_the_announcement(recorded):
    started, release = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        release.wait(5)
        _announce("late")

    call = asyncio.ensure_future(db_async(slow)())
    await asyncio.to_thread(started.wait, 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert recorded == []
    release.set()
    for _ in range(200):
        if recorded:
            break
        await asyncio.sleep(0.01)
    assert _texts(recorded) == ["late"]


def test_sync_code_publishes_as_each_transaction_commits(recorded):
    with transaction.atomic():
        publish_on_commit(frame_event("g", {"type": "t", "text": "held"}))
        assert recorded == []  # not before the commit
    assert _texts(recorded) == ["held"]
