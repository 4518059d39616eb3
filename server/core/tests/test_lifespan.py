"""The ASGI lifespan protocol (core.lifespan)."""

from __future__ import annotations

import gc
from typing import Any

from core import lifespan


async def test_start_up_runs_the_hooks_then_freezes_what_they_made(monkeypatch):
    ran: list[str] = []

    async def hook() -> None:
        ran.append("start")

    async def failing() -> None:
        raise RuntimeError("a broken hook")

    async def stop() -> None:
        ran.append("stop")

    monkeypatch.setattr(lifespan, "on_startup", [failing, hook])
    monkeypatch.setattr(lifespan, "on_shutdown", [stop])
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append({**message, "frozen": gc.get_freeze_count()})

    gc.unfreeze()
    try:
        await lifespan.app({"type": "lifespan"}, receive, send)
    finally:
        gc.unfreeze()
    assert ran == ["start", "stop"]  # a failing hook does not stop the others
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert sent[0]["frozen"] > 0
