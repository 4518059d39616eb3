"""Helpers of the tests of steering the assistant (SPEC 10): sessions opened over the API,
frames read up to a point, and what the local upstream was asked. A socket here is anything
with `send_json_to(frame)` and `recv(wait)`: a test socket, or a real one to a server process
(tests/multiprocess)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from testkit.upstream import FakeUpstream


async def until(sock: Any, done: Callable[[dict[str, Any]], bool], wait: float = 5) -> list[Any]:
    """Frames up to and including the first for which `done` is true."""
    frames = []
    while True:
        frame = await sock.recv(wait)
        frames.append(frame)
        if done(frame):
            return frames


async def say(sock: Any, text: str) -> int:
    """Send a message and wait for its echo; its id."""
    await sock.send_json_to({"type": "chat_message", "message": text})
    while True:
        frame = await sock.recv(5)
        if frame["type"] == "chat_message" and frame["message"] == text:
            return int(frame["message_id"])


def is_reply(frame: dict[str, Any]) -> bool:
    """The assistant's final `chat_message` (a saved reply)."""
    return bool(frame["type"] == "chat_message" and frame["is_ai"])


async def until_reply(sock: Any, wait: float = 5) -> list[Any]:
    return await until(sock, is_reply, wait)


def asked(upstream: FakeUpstream, index: int = -1) -> dict[str, Any]:
    """The body of a request the upstream received (the last by default)."""
    return upstream.requests[index].body


def contents(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"]]
