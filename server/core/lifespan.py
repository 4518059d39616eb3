"""The ASGI lifespan protocol: start-up and shutdown work of a server process.

Django's ASGI handler does not speak lifespan, so the project's router sends it here. Apps
register coroutines in `on_startup` / `on_shutdown` (from AppConfig.ready); uvicorn runs them
when a worker starts and after it has closed its sockets (with 1012) on SIGTERM.

A hook that raises `StartupRefused` stops the process from serving: uvicorn reports the
start-up as failed and exits (with several workers, the whole server stops). Any other failure
of a hook is logged and the server starts all the same.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[Any]]
on_startup: list[Hook] = []
on_shutdown: list[Hook] = []


class StartupRefused(Exception):
    """Raised by a start-up hook when this process must not serve; the message says why."""


async def _run(hooks: list[Hook], phase: str) -> None:
    for hook in hooks:
        try:
            await hook()
        except StartupRefused:
            raise
        except Exception:
            # One failing hook must not stop the server from starting (or finishing).
            logger.exception("%s hook %s failed", phase, getattr(hook, "__qualname__", hook))


def _freeze_startup_objects() -> None:
    """Take what start-up made (modules, classes, settings, URL patterns) out of the garbage
    collector's view: they live as long as the process, and every full collection would scan
    them all again while no socket is served."""
    gc.collect()
    gc.freeze()


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await _run(on_startup, "Start-up")
            except StartupRefused as refused:
                logger.error("Start-up refused: %s", refused)
                await send({"type": "lifespan.startup.failed", "message": str(refused)})
                return
            _freeze_startup_objects()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await _run(on_shutdown, "Shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return
