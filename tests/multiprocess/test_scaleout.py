"""Everything in SPEC holds across server processes (two real uvicorn processes over PostgreSQL
and Redis, members on both, a local OpenAI-compatible upstream)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any, NamedTuple

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from accounts.models import User
from chat.models import Message
from chat.services import room_create
from llm.models import AiReply
from testkit.servers import manage
from testkit.upstream import Behavior

from .conftest import CHAT_RATE, LLM_RATE, LOCK_TTL_SECONDS

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

LONG_TEXT = "".join(f"토큰{i:03d} " for i in range(60))  # 480 characters


class Peer:
    """One member's real WebSocket to one server process."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, server: Any, path: str, cookie: str) -> Peer:
        conn = await connect(
            server.ws_url + path,
            additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"},
            open_timeout=10,
        )
        return cls(conn)

    async def send(self, **frame: Any) -> None:
        await self.conn.send(json.dumps(frame))

    async def send_json_to(self, frame: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(frame))

    async def recv(self, wait: float = 10) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.conn.recv(), wait))  # type: ignore[no-any-return]

    async def recv_type(self, frame_type: str, wait: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + wait
        while True:
            frame = await self.recv(max(deadline - time.monotonic(), 0.01))
            if frame["type"] == frame_type:
                return frame

    async def until_ai_message(self, wait: float = 15) -> list[dict[str, Any]]:
        """Frames up to and including the assistant's final chat_message."""
        frames = []
        deadline = time.monotonic() + wait
        while True:
            frame = await self.recv(max(deadline - time.monotonic(), 0.01))
            frames.append(frame)
            if frame["type"] == "chat_message" and frame["is_ai"]:
                return frames

    async def close_code(self, wait: float = 10) -> int | None:
        deadline = time.monotonic() + wait
        try:
            while True:
                await self.recv(max(deadline - time.monotonic(), 0.01))
        except ConnectionClosed:
            return self.conn.close_code

    async def close(self) -> None:
        await self.conn.close()


def _make_member(name: str) -> tuple[User, str]:
    user = User.objects.create_user(username=name, password=None)
    client = Client()
    client.force_login(user)
    return user, client.cookies[settings.SESSION_COOKIE_NAME].value


@sync_to_async
def make_room(*names: str) -> tuple[str, dict[str, str]]:
    """A room owned by the first name with the others as participants; the members' cookies."""
    cookies = {}
    users = []
    for name in names:
        user, cookie = _make_member(name)
        users.append(user)
        cookies[name] = cookie
    room = room_create(owner=users[0], name="scale")
    room.participants.add(*users[1:])
    return str(room.pk), cookies


async def call_api(
    server: Any, cookie: str, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, Any]]:
    """One JSON API request to a server process, signed in with `cookie`."""

    def call() -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(  # noqa: S310 - a loopback URL of our own
            server.base_url + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={
                "Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    return await asyncio.to_thread(call)


async def start_session(server: Any, cookie: str, room_id: str) -> str:
    status, body = await call_api(
        server, cookie, "POST", "/api/llm/start_session/", {"room_uuid": room_id}
    )
    assert status == 201, body
    return str(body["session_id"])


class AiSession(NamedTuple):
    room: str
    id: str
    cookies: dict[str, str]
    peers: list[Peer]


async def ai_session(
    peers: Any, start_on: Any, names: tuple[str, ...], *where: tuple[Any, str]
) -> AiSession:
    """A room of `names` whose first member starts an AI session through server `start_on`, and
    a socket on the session for each (server, name) of `where`, past its ai_joined frame."""
    room, cookies = await make_room(*names)
    session = await start_session(start_on, cookies[names[0]], room)
    opened = [await peers(server, f"/ws/llm/{session}/", cookies[name]) for server, name in where]
    for peer in opened:
        assert (await peer.recv())["type"] == "ai_joined"
    return AiSession(room, session, cookies, opened)


def stream_text(frames: list[dict[str, Any]]) -> str:
    start = next(f for f in frames if f["type"] == "ai_stream_start")
    deltas = [f for f in frames if f["type"] == "ai_stream_delta"]
    assert [d["index"] for d in deltas] == sorted({d["index"] for d in deltas})
    return str(start["text"]) + "".join(d["delta"] for d in deltas)


@sync_to_async
def count_messages(**filters: Any) -> int:
    return Message.objects.filter(**filters).count()


async def test_room_chat_reaches_members_on_the_other_process(cluster, peers):
    a, b = cluster.processes[:2]
    room, cookies = await make_room("alice", "bob")
    path = f"/ws/chat/{room}/"
    alice_a = await peers(a, path, cookies["alice"])
    alice_b = await peers(b, path, cookies["alice"])
    bob_b = await peers(b, path, cookies["bob"])

    await alice_a.send(type="chat_message", message="from A", client_id="m-1")
    theirs = await bob_b.recv_type("chat_message")
    mine_elsewhere = await alice_b.recv_type("chat_message")
    mine = await alice_a.recv_type("chat_message")
    assert theirs["message"] == mine["message"] == "from A"
    assert theirs["is_self"] is False
    assert "client_id" not in theirs
    assert mine["is_self"] is mine_elsewhere["is_self"] is True
    assert mine_elsewhere["client_id"] == "m-1"

    await bob_b.send(type="chat_message", message="from B")
    assert (await alice_a.recv_type("chat_message"))["message"] == "from B"
    assert (await alice_b.recv_type("chat_message"))["message"] == "from B"

    # A retry through the other process is recognised: echoed to the sender, stored once.
    await alice_b.send(type="chat_message", message="from A", client_id="m-1")
    echo = await alice_b.recv_type("chat_message")
    assert echo["message_id"] == mine["message_id"]
    await bob_b.send(type="chat_message", message="marker")
    assert (await alice_a.recv_type("chat_message"))["message"] == "marker"
    assert await count_messages(room_id=room) == 3


async def test_one_ai_stream_for_members_on_both_processes_and_one_provider_call(
    cluster, upstream, peers
):
    upstream.reset(Behavior(text=LONG_TEXT[:120], chunk_chars=3, delay=0.01))
    a, b = cluster.processes[:2]
    session = await ai_session(peers, a, ("alice", "bob"), (a, "alice"), (b, "alice"), (b, "bob"))
    alice_a, alice_b, bob_b = session.peers

    await alice_a.send(type="chat_message", message="질문", client_id="q-1")
    # The same message again through the other process, as a client retrying would.
    await alice_b.send(type="chat_message", message="질문", client_id="q-1")
    seen_a, seen_b = await asyncio.gather(alice_a.until_ai_message(), bob_b.until_ai_message())
    for frames in (seen_a, seen_b):
        assert stream_text(frames) == upstream.default.text
        assert frames[-1]["message"] == upstream.default.text
        end = next(f for f in frames if f["type"] == "ai_stream_end")
        assert end["finish_reason"] == "stop"
    stream_ids = {f["stream_id"] for f in seen_a + seen_b if f["type"] == "ai_stream_start"}
    assert len(stream_ids) == 1
    await asyncio.sleep(0.5)  # room for a second, wrong, provider call to show up
    assert len(upstream.requests) == 1
    assert await count_messages(ai_session_id=session.id, sender__username="alice") == 1


async def test_replies_run_one_at_a_time_in_message_order_across_processes(
    cluster, upstream, peers
):
    upstream.reset(Behavior(text=LONG_TEXT[:48], chunk_chars=4, first_delay=0.2, delay=0.02))
    a, b = cluster.processes[:2]
    session = await ai_session(peers, a, ("alice", "bob"), (a, "alice"), (b, "bob"))
    alice_a, bob_b = session.peers

    await asyncio.gather(
        alice_a.send(type="chat_message", message="first from A"),
        bob_b.send(type="chat_message", message="second from B"),
    )
    frames = await alice_a.until_ai_message()
    frames += await alice_a.until_ai_message()

    assert len(upstream.requests) == 2
    # The second request reached the provider only after the first stream had ended.
    assert upstream.requests[1].received_at >= upstream.requests[0].ended_at
    # Stream frames never interleave: start, deltas, end, then the next stream.
    order = [(f["type"], f["stream_id"]) for f in frames if f["type"].startswith("ai_stream_")]
    first_id, second_id = order[0][1], order[-1][1]
    assert first_id != second_id
    boundary = order.index(("ai_stream_end", first_id))
    assert all(sid == first_id for _, sid in order[: boundary + 1])
    assert all(sid == second_id for _, sid in order[boundary + 1 :])
    # In message order (as the members saw the messages arrive): the first reply answers the
    # first message, and the second reply's context holds the first exchange.
    ordered = [f["message"] for f in frames if f["type"] == "chat_message" and not f["is_ai"]]
    first_context = upstream.requests[0].body["messages"]
    second_context = upstream.requests[1].body["messages"]
    assert first_context[-1]["content"].endswith(ordered[0])
    assert second_context[-1]["content"].endswith(ordered[1])
    assert any(m["content"] == upstream.default.text for m in second_context[:-1])


async def test_stop_from_a_member_on_the_other_process(cluster, upstream, peers):
    upstream.reset(Behavior(text=LONG_TEXT, chunk_chars=4, delay=0.03))
    a, b = cluster.processes[:2]
    session = await ai_session(peers, a, ("alice", "bob"), (a, "alice"), (b, "bob"))
    alice_a, bob_b = session.peers

    await alice_a.send(type="chat_message", message="길게 설명해줘")
    await bob_b.recv_type("ai_stream_delta")
    asked = time.monotonic()
    await bob_b.send(type="stop_generation")
    end = await bob_b.recv_type("ai_stream_end")
    took = time.monotonic() - asked
    assert end["finish_reason"] == "stopped"
    assert took <= 0.5, f"stop took {took:.3f} s"
    final = await bob_b.recv_type("chat_message")
    assert final["is_ai"] is True
    assert final["message"]
    assert LONG_TEXT.startswith(final["message"])
    assert len(final["message"]) < len(LONG_TEXT)
    reply = await sync_to_async(AiReply.objects.get)(session_id=session.id)
    assert reply.status == AiReply.Status.STOPPED
    # Stopping ends the provider stream too: it does not run on, billing, to its end.
    (call,) = upstream.requests
    assert await asyncio.to_thread(call.finished.wait, 5), "the provider stream went on"
    assert call.hung_up
    assert not call.completed


async def test_late_joiner_on_the_other_process_gets_the_whole_reply(cluster, upstream, peers):
    upstream.reset(Behavior(text=LONG_TEXT[:240], chunk_chars=4, delay=0.02))
    a, b = cluster.processes[:2]
    session = await ai_session(peers, a, ("alice", "carol"), (a, "alice"))
    (alice_a,) = session.peers
    await alice_a.send(type="chat_message", message="천천히 답해줘")
    for _ in range(3):
        await alice_a.recv_type("ai_stream_delta")

    carol_b = await peers(b, f"/ws/llm/{session.id}/", session.cookies["carol"])
    assert (await carol_b.recv())["type"] == "ai_joined"
    # What is being answered and what waits (ai_queue), then the reply so far.
    frames = [f for f in await carol_b.until_ai_message() if f["type"] != "ai_queue"]
    start = frames[0]
    assert start["type"] == "ai_stream_start"
    assert start["text"], "the late joiner starts from the text streamed so far"
    assert stream_text(frames) == upstream.default.text
    assert frames[-1]["message"] == upstream.default.text


async def test_deactivation_and_removal_close_sockets_on_the_other_process(cluster, peers):
    a, b = cluster.processes[:2]
    session = await ai_session(peers, a, ("alice", "bob"), (b, "bob"))
    room, cookies, (bob_session,) = session.room, session.cookies, session.peers
    bob_room = await peers(b, f"/ws/chat/{room}/", cookies["bob"])

    status, body = await call_api(
        a, cookies["alice"], "POST", f"/api/llm/sessions/{session.id}/deactivate/"
    )
    assert status == 200, body
    ended = await bob_session.recv_type("ai_session_ended")
    assert ended["session_id"] == session.id
    assert await bob_session.close_code() == 4410

    status, body = await call_api(
        a, cookies["alice"], "DELETE", f"/api/chat/rooms/{room}/participants/bob/"
    )
    assert status == 200, body
    assert await bob_room.close_code() == 4403


@pytest.mark.parametrize(
    "change",
    ["user.is_active = False", "user.set_password('Another-Horse-43')"],
    ids=["deactivated", "new-password"],
)
async def test_an_account_change_closes_its_sockets_on_every_process(cluster, peers, change):
    a, b = cluster.processes[:2]
    room, cookies = await make_room("alice", "bob")
    path = f"/ws/chat/{room}/"
    bob_a = await peers(a, path, cookies["bob"])
    bob_b = await peers(b, path, cookies["bob"])
    alice_b = await peers(b, path, cookies["alice"])
    # An operator's shell, as any code that saves the account: the change is announced
    # through Redis to every server process.
    script = (
        "from accounts.models import User; user = User.objects.get(username='bob'); "
        f"{change}; user.save()"
    )
    await asyncio.to_thread(manage, cluster.env, "shell", "-c", script)
    assert await bob_a.close_code() == 4401
    assert await bob_b.close_code() == 4401
    await alice_b.send(type="chat_message", message="still here")
    assert (await alice_b.recv_type("chat_message"))["message"] == "still here"


async def test_rate_limits_are_one_limit_across_processes(cluster, upstream, peers):
    upstream.reset(Behavior(text="네", chunk_chars=4))
    a, b = cluster.processes[:2]
    room, cookies = await make_room("dave", "erin")
    path = f"/ws/chat/{room}/"
    on_a = await peers(a, path, cookies["dave"])
    on_b = await peers(b, path, cookies["dave"])
    for i in range(CHAT_RATE):
        await (on_a if i % 2 == 0 else on_b).send(type="chat_message", message=f"m{i}")
        # Both sockets see every message; one of them is enough to pace the sends.
        assert (await on_a.recv_type("chat_message"))["message"] == f"m{i}"
    await on_b.send(type="chat_message", message="one too many")
    error = await on_b.recv_type("error")
    assert error["code"] == "rate_limited"
    assert error["retry_after"] >= 1
    assert await count_messages(room_id=room) == CHAT_RATE

    session = await start_session(a, cookies["dave"], room)
    path = f"/ws/llm/{session}/"
    ai_a = await peers(a, path, cookies["dave"])
    ai_b = await peers(b, path, cookies["dave"])
    for i in range(LLM_RATE):
        await (ai_a if i % 2 == 0 else ai_b).send(type="chat_message", message=f"q{i}")
        await ai_a.until_ai_message()
    await ai_b.send(type="chat_message", message="one too many")
    error = await ai_b.recv_type("ai_error")
    assert error["code"] == "rate_limited"
    assert len(upstream.requests) == LLM_RATE


async def test_lock_of_a_killed_process_expires_and_the_next_reply_runs(cluster, upstream, peers):
    upstream.reset(Behavior(text=LONG_TEXT, chunk_chars=4, delay=0.05))
    b = cluster.processes[1]
    victim = cluster.start("victim")
    session = await ai_session(peers, b, ("alice", "bob"), (victim, "alice"), (b, "bob"))
    alice_v, bob_b = session.peers

    await alice_v.send(type="chat_message", message="first, on the doomed process")
    first = await bob_b.recv_type("ai_stream_start")
    await bob_b.recv_type("ai_stream_delta")
    victim.kill()  # mid-reply, holding the session's lock
    killed = time.monotonic()

    upstream.default = Behavior(text=LONG_TEXT[:40], chunk_chars=4)
    await bob_b.send(type="chat_message", message="second, on the survivor")
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["message"] != LONG_TEXT[:40]:
        # The interrupted reply's checkpoint, if one was saved, comes first as its own message.
        frames += await bob_b.until_ai_message(wait=LOCK_TTL_SECONDS + 15)
    waited = time.monotonic() - killed

    # The dead process's reply is closed as interrupted, then the next one streams in full.
    ends = [f for f in frames if f["type"] == "ai_stream_end"]
    assert ends[0]["stream_id"] == first["stream_id"]
    assert ends[0]["finish_reason"] == "error"
    second_start = [f for f in frames if f["type"] == "ai_stream_start"][-1]
    assert second_start["stream_id"] != first["stream_id"]
    assert frames[-1]["message"] == LONG_TEXT[:40]
    assert waited <= LOCK_TTL_SECONDS + 5, f"the next reply waited {waited:.1f} s"
    assert len(upstream.requests) == 2
    statuses = await sync_to_async(
        lambda: sorted(
            AiReply.objects.filter(session_id=session.id).values_list("status", flat=True)
        )
    )()
    assert statuses == sorted([AiReply.Status.INTERRUPTED, AiReply.Status.DONE])
