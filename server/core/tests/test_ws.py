"""Socket plumbing (core.ws): paths nobody serves, frames a socket cannot carry, and what a
client's broken frames leave in the log."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.testing import WebsocketCommunicator
from conftest import session_cookie

from core.logs import ClientProtocolErrorsAsWarnings
from core.ws import AppConsumer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "path", ["/ws/chat/not-a-uuid/", "/ws/other/", "/ws/llm/", "/ws/chat/1/2/", "/"]
)
async def test_a_path_nobody_serves_is_refused_like_a_missing_room(ws, alice, path):
    sock = await ws(path, alice)
    assert await sock.closed_with() == 4404


class Echo(AppConsumer):
    frame_types = frozenset({"echo"})

    async def handle_echo(self, frame: dict[str, Any]) -> None:
        self.send_frame({"type": "echo", "text": frame["text"]})


def encoding_server(app: Any) -> Any:
    """`app` behind a server that encodes every frame to UTF-8 as it sends it, as uvicorn does
    (a lone surrogate cannot be encoded)."""

    async def serve(scope: Any, receive: Any, send: Any) -> None:
        async def encoding_send(message: dict[str, Any]) -> None:
            message.get("text", "").encode()
            await send(message)

        await app(scope, receive, encoding_send)

    return serve


async def test_a_socket_that_cannot_send_a_frame_is_closed_not_left_silent(alice):
    cookie = await sync_to_async(session_cookie)(alice)
    app = encoding_server(AuthMiddlewareStack(Echo.as_asgi()))
    sock = WebsocketCommunicator(
        app,
        "/ws/x/",
        headers=[(b"host", b"testserver"), (b"cookie", f"sessionid={cookie}".encode())],
    )
    connected, _ = await sock.connect()
    assert connected
    await sock.send_json_to({"type": "echo", "text": "fine"})
    assert (await sock.receive_json_from())["text"] == "fine"
    await sock.send_json_to({"type": "echo", "text": "\ud800"})
    closed = await sock.receive_output(3)
    assert closed == {"type": "websocket.close", "code": 1011}


def test_a_clients_broken_frame_is_one_warning_line_without_a_traceback():
    try:
        b"\xff".decode()
    except UnicodeDecodeError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "uvicorn.error", logging.ERROR, __file__, 1,
        "Invalid UTF-8 sequence received from client.", (), exc_info,
    )  # fmt: skip
    assert ClientProtocolErrorsAsWarnings().filter(record)
    assert (record.levelname, record.exc_info) == ("WARNING", None)
    ours = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Other.", (), exc_info)
    assert ClientProtocolErrorsAsWarnings().filter(ours)
    assert (ours.levelname, ours.exc_info) == ("ERROR", exc_info)


async def test_a_server_behind_its_readers_keeps_their_frames(ws, alice):
    """More frames than the outbox's mark queued in one turn of the loop (a burst the writer
    has not been scheduled for yet) is the server's lag, not the client's: every frame arrives,
    in order, and the socket stays open."""
    from core.events import frame_event
    from core.groups import user_group
    from core.hub import get_hub
    from core.ws import OUTBOX_FRAMES

    sock = await ws("/ws/me/", alice)
    await sock.send_json_to({"type": "ping"})
    assert (await sock.recv_type("pong"))["type"] == "pong"
    hub = get_hub()
    burst = OUTBOX_FRAMES + 500
    for n in range(burst):
        hub.dispatch(frame_event(user_group(alice.pk), {"type": "burst", "n": n}))
    got = []
    while len(got) < burst:
        frame = await sock.recv()
        if frame["type"] == "burst":
            got.append(frame["n"])
    assert got == list(range(burst))
    await sock.send_json_to({"type": "ping"})
    assert (await sock.recv_type("pong"))["type"] == "pong"
