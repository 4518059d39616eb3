"""Publishing real-time events: the only module that sends to the channel layer.

A state change announces itself from its service, once committed:
`publish_on_commit(frame_event(...))` (Zulip's `send_event_on_commit`). Where the service ran
decides how the event leaves:

- called from the event loop through `core.db.db_async` (a socket handler), the events
  committed during the call are handed back to the loop and published from there, in order,
  once the call returns: a database thread never waits for the loop;
- called from sync code (an HTTP view, the admin, a management command), they are published
  from that thread as each transaction commits.

Streaming frames, which follow no transaction (the assistant's deltas), are published with
`apublish` from the reply pipeline on the loop.

An event reaches every socket of this product that joined the group, on every server process,
through the per-process hub (`core.hub`): a frame is encoded once per process (twice when it has
a variant for the sender's own sockets), never once per recipient.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from core.groups import user_group

logger = logging.getLogger(__name__)

FRAME = "hub.frame"
CONTROL = "hub.control"
PERSONAL = "hub.personal"

_collecting = threading.local()


def frame_event(
    group: str,
    frame: dict[str, Any],
    *,
    sender_id: int | None = None,
    self_frame: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    skip_sender: bool = False,
    user_frames: list[tuple[int, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """A layer message carrying `frame` to the group; `self_frame` goes to the sender's sockets,
    or, with `skip_sender`, nothing does (someone typing is not told so); each of `user_frames`
    (user id, frame) goes to that user's sockets instead of `frame`.

    `meta` travels beside the encoded frame to each subscriber (a socket joining mid-stream
    uses it to skip deltas it already has).
    """
    event: dict[str, Any] = {"type": FRAME, "group": group, "frame": frame}
    if meta is not None:
        event["meta"] = meta
    if self_frame is not None:
        event["self_frame"] = self_frame
        event["sender_id"] = sender_id
    elif skip_sender:
        event["skip_sender"] = True
        event["sender_id"] = sender_id
    if user_frames:
        # Pairs, not a mapping: the Redis layer's msgpack refuses integer keys.
        event["user_frames"] = [[user_id, variant] for user_id, variant in user_frames]
    return event


def personal_event(group: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A layer message whose frame each subscriber makes for its own user from `payload` (an
    unread count, whether the user is the one mentioned): the hub hands it over unencoded."""
    return {"type": PERSONAL, "group": group, "payload": payload}


def control_event(group: str, action: str, **params: Any) -> dict[str, Any]:
    """A layer message asking the group's subscribers to act (close, stop...), not to send a
    frame."""
    return {"type": CONTROL, "group": group, "action": action, "params": params}


async def apublish(event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:  # pragma: no cover - settings always configure a layer
        raise RuntimeError("No channel layer is configured.")
    await layer.group_send(event["group"], event)


async def apublish_all(events: list[dict[str, Any]]) -> None:
    """Publish in order; a failure is logged, not raised: the change is committed, and clients
    recover what a lost broadcast carried from history (`after=`)."""
    for event in events:
        try:
            await apublish(event)
        except Exception:
            logger.exception("Could not publish %s to %s", event["type"], event["group"])


def _publish_now(event: dict[str, Any]) -> None:
    try:
        async_to_sync(apublish)(event)
    except Exception:
        logger.exception("Could not publish %s to %s", event["type"], event["group"])


def _committed(event: dict[str, Any]) -> None:
    batch: list[dict[str, Any]] | None = getattr(_collecting, "batch", None)
    if batch is not None:
        batch.append(event)
    else:
        _publish_now(event)


def publish_on_commit(event: dict[str, Any]) -> None:
    """Publish once the current transaction commits (at once when none is open)."""
    transaction.on_commit(partial(_committed, event), robust=True)


@contextmanager
def collected() -> Iterator[list[dict[str, Any]]]:
    """Hold the events committed in this thread inside the block, for the caller to publish
    from the event loop (`core.db.db_async` does)."""
    outer = getattr(_collecting, "batch", None)
    batch: list[dict[str, Any]] = []
    _collecting.batch = batch
    try:
        yield batch
    finally:
        _collecting.batch = outer


def user_recheck(user_id: int) -> dict[str, Any]:
    """The event asking every socket of a user, on every process, to check that the session
    it was opened with still signs the user in, and to close (4401) if not."""
    return control_event(user_group(user_id), "recheck")
