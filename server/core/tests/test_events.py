"""How committed events leave (core.events): from the event loop for a socket's call, in
order, even when the call raised or its caller went away."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.db import transaction

from core.db import db_async
from core.events import frame_event, publish_on_commit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def recorded(monkeypatch):
    """Every message published to the channel layer, with the thread that published it. The
    layer itself is kept (the process's hub listens to it)."""
    sent: list[tuple[int, dict[str, Any]]] = []
    layer = get_channel_layer()
    publish = layer.group_send

    async def recording(group: str, message: dict[str, Any]) -> None:
        sent.append((threading.get_ident(), message))
        await publish(group, message)

    monkeypatch.setattr(layer, "group_send", recording)
    return sent


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
