"""Publishing real-time events. Services call these; nothing else sends to the channel layer.

An event is delivered to every socket of this product that joined the group, on every server
process, through the per-process hub (`core.hub`). A frame is encoded once per process (twice
when it has a variant for the sender's own sockets), never once per recipient.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

FRAME = "hub.frame"
CONTROL = "hub.control"


def frame_event(
    group: str,
    frame: dict[str, Any],
    *,
    sender_id: int | None = None,
    self_frame: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A layer message carrying `frame` to the group; `self_frame` goes to the sender's sockets.

    `meta` travels beside the encoded frame to each subscriber (a socket joining mid-stream
    uses it to skip deltas it already has).
    """
    event: dict[str, Any] = {"type": FRAME, "group": group, "frame": frame}
    if meta is not None:
        event["meta"] = meta
    if self_frame is not None:
        event["self_frame"] = self_frame
        event["sender_id"] = sender_id
    return event


def control_event(group: str, action: str, **params: Any) -> dict[str, Any]:
    """A layer message asking the group's sockets to act (close, stop...), not to send a frame."""
    return {"type": CONTROL, "group": group, "action": action, "params": params}


async def apublish(event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:  # pragma: no cover - settings always configure a layer
        raise RuntimeError("No channel layer is configured.")
    await layer.group_send(event["group"], event)


def publish(event: dict[str, Any]) -> None:
    """Send from sync code (a service running in a worker thread, or a management command)."""
    try:
        async_to_sync(apublish)(event)
    except Exception:
        # The change is committed; a broadcast that fails must not turn it into an error.
        # Clients recover what they missed from history (`after=`).
        logger.exception("Could not publish %s to %s", event["type"], event["group"])


def publish_on_commit(event: dict[str, Any]) -> None:
    """Publish once the current transaction commits (at once when none is open)."""
    transaction.on_commit(partial(publish, event), robust=True)
