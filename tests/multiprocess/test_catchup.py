"""Exact catch-up across server processes (SPEC 9.4): a reader that polls `after=<the last
message_id it saw>` while many members write at once, on two processes, must see every message
of the conversation exactly once, people's messages and the assistant's replies alike, with no
window of its own."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from chat.models import Message
from testkit.upstream import Behavior

from .conftest import Cluster, two_servers
from .test_scaleout import Peer, call_api, make_room, start_session

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

WRITERS = 8
READERS = 3


@pytest.fixture(scope="module")
def busy_cluster(django_db_setup, upstream, tmp_path_factory) -> Iterator[Cluster]:
    """Two server processes with rate limits out of the way."""
    with two_servers(
        upstream,
        tmp_path_factory.mktemp("catchup"),
        "catchup",
        CHAT_USER_RATE="100000/minute",
        LLM_USER_RATE="100000/minute",
    ) as group:
        yield group


def _get(server: Any, cookie: str, path: str) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - a loopback URL of our own
        server.base_url + path,
        headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())  # type: ignore[no-any-return]


class Reader:
    """Polls `after=` as a reconnecting client would, keeping only what history gave it."""

    def __init__(self, server: Any, cookie: str, path: str) -> None:
        self.server, self.cookie, self.path = server, cookie, path
        self.after = 0
        self.seen: list[int] = []

    def poll(self) -> int:
        """One catch-up: pages after the last id seen until `has_more` is false."""
        got = 0
        while True:
            body = _get(self.server, self.cookie, f"{self.path}?after={self.after}&limit=200")
            ids = [m["message_id"] for m in body["messages"]]
            self.seen += ids
            got += len(ids)
            if ids:
                self.after = ids[-1]
            if not body["has_more"]:
                return got

    async def run(self, writing: asyncio.Event) -> None:
        while writing.is_set():
            await asyncio.to_thread(self.poll)


async def _write(peer: Peer, name: str, count: int) -> None:
    """Send `count` messages, each as soon as the previous one's echo came back."""
    for n in range(count):
        client_id = f"{name}-{n}"
        await peer.send(type="chat_message", message=f"{name} {n}", client_id=client_id)
        while True:
            frame = await peer.recv(20)
            if frame.get("type") == "chat_message" and frame.get("client_id") == client_id:
                break


@sync_to_async
def _stored_ids(room_id: str, session_id: str | None) -> list[int]:
    return list(
        Message.objects.filter(room_id=room_id, ai_session_id=session_id)
        .order_by("id")
        .values_list("id", flat=True)
    )


async def _race(
    cluster: Cluster, peers: Any, kind: str, per_writer: int
) -> tuple[list[Reader], list[int]]:
    names = [f"w{i}" for i in range(WRITERS)]
    room_id, cookies = await make_room(*names)
    a, b = cluster.processes[:2]
    session_id = None
    if kind == "room":
        ws_path, history = f"/ws/chat/{room_id}/", f"/api/chat/rooms/{room_id}/messages/"
    else:
        session_id = await start_session(a, cookies[names[0]], room_id)
        ws_path = f"/ws/llm/{session_id}/"
        history = f"/api/llm/sessions/{session_id}/messages/"
    writers = [
        await peers(a if i % 2 == 0 else b, ws_path, cookies[name]) for i, name in enumerate(names)
    ]
    readers = [
        Reader(a if i % 2 == 0 else b, cookies[names[i % WRITERS]], history) for i in range(READERS)
    ]
    writing = asyncio.Event()
    writing.set()
    polling = [asyncio.create_task(r.run(writing)) for r in readers]
    await asyncio.gather(
        *(_write(peer, name, per_writer) for peer, name in zip(writers, names, strict=True))
    )
    if kind == "session":
        # Every question gets its reply; wait for the last one to be stored.
        expected = WRITERS * per_writer * 2
        for _ in range(600):
            if len(await _stored_ids(room_id, session_id)) >= expected:
                break
            await asyncio.sleep(0.1)
    writing.clear()
    await asyncio.gather(*polling)
    for reader in readers:  # everything is committed now: a last catch-up
        await asyncio.to_thread(reader.poll)
    return readers, await _stored_ids(room_id, session_id)


@pytest.mark.parametrize(("kind", "per_writer"), [("room", 60), ("session", 12)])
async def test_a_reader_polling_after_sees_every_message_once(
    busy_cluster, upstream, peers, kind, per_writer
):
    upstream.default = Behavior(text="답변 reply", chunk_chars=3)
    readers, stored = await _race(busy_cluster, peers, kind, per_writer)
    expected = WRITERS * per_writer * (2 if kind == "session" else 1)
    assert len(stored) == expected
    for reader in readers:
        assert len(reader.seen) == len(set(reader.seen)), "a message came twice"
        missed = sorted(set(stored) - set(reader.seen))
        assert missed == [], f"{len(missed)} of {len(stored)} messages never reached the reader"


async def test_edits_and_deletions_reach_everyone_on_both_processes(busy_cluster, peers):
    a, b = busy_cluster.processes[:2]
    room_id, cookies = await make_room("owner", "bob", "carol")
    path = f"/ws/chat/{room_id}/"
    sockets = {
        "owner": await peers(a, path, cookies["owner"]),
        "bob": await peers(b, path, cookies["bob"]),
        "carol": await peers(a, path, cookies["carol"]),
    }
    history = f"/api/chat/rooms/{room_id}/messages/"
    start = (await asyncio.to_thread(_get, a, cookies["carol"], history))["change_seq"]
    await sockets["bob"].send(type="chat_message", message="helo", client_id="b-1")
    said = [await s.recv_type("chat_message") for s in sockets.values()]
    message_id = said[0]["message_id"]
    # The owner's copy (another process's socket) says the owner may delete it.
    assert [f["can_delete"] for f in said] == [True, True, False]
    status, body = await call_api(
        a, cookies["bob"], "PATCH", f"/api/chat/messages/{message_id}/", {"message": "hello"}
    )
    assert status == 200, body
    for sock in sockets.values():
        edited = await sock.recv_type("message_edited")
        assert (edited["message_id"], edited["message"]) == (message_id, "hello")
    status, body = await call_api(
        b, cookies["owner"], "DELETE", f"/api/chat/messages/{message_id}/"
    )
    assert status == 200, body
    for sock in sockets.values():
        deleted = await sock.recv_type("message_deleted")
        assert deleted["message_id"] == message_id
    # A client that was away learns both changes in one request, from either process.
    for server in (a, b):
        body = await asyncio.to_thread(
            _get, server, cookies["carol"], f"{history}?after={message_id}&changed_after={start}"
        )
        assert [(m["message_id"], m["deleted"]) for m in body["changes"]] == [(message_id, True)]
        assert body["change_seq"] == start + 2


async def test_concurrent_edits_on_both_processes_are_caught_up_exactly(busy_cluster, peers):
    """Members edit their own messages at once through both processes while a reader polls
    `changed_after`: it ends with every message as stored, and every socket saw every change
    number once."""
    names = [f"e{i}" for i in range(6)]
    room_id, cookies = await make_room(*names)
    a, b = busy_cluster.processes[:2]
    watcher = await peers(b, f"/ws/chat/{room_id}/", cookies[names[0]])
    history = f"/api/chat/rooms/{room_id}/messages/"
    ids = {}
    for i, name in enumerate(names):
        sock = await peers(a if i % 2 else b, f"/ws/chat/{room_id}/", cookies[name])
        await sock.send(type="chat_message", message=f"{name} v0", client_id=f"{name}-0")
        while True:
            frame = await sock.recv()
            if frame.get("client_id") == f"{name}-0":
                ids[name] = frame["message_id"]
                break
    seen: dict[int, str] = {}
    cursor = 0
    edits = 10

    async def edit(i: int, name: str) -> None:
        for n in range(1, edits + 1):
            status, body = await call_api(
                a if (i + n) % 2 else b,
                cookies[name],
                "PATCH",
                f"/api/chat/messages/{ids[name]}/",
                {"message": f"{name} v{n}"},
            )
            assert status == 200, body

    def poll() -> None:
        nonlocal cursor
        while True:
            body = _get(
                a if cursor % 2 else b, cookies[names[0]], f"{history}?changed_after={cursor}"
            )
            for m in body["changes"]:
                seen[m["message_id"]] = m["message"]
            cursor = body["change_seq"]
            if not body["has_more_changes"]:
                return

    editing = asyncio.gather(*(edit(i, name) for i, name in enumerate(names)))
    while not editing.done():
        await asyncio.to_thread(poll)
    await editing
    await asyncio.to_thread(poll)
    assert seen == {ids[name]: f"{name} v{edits}" for name in names}
    assert cursor == len(names) * edits
    numbers = []
    while len(numbers) < len(names) * edits:
        numbers.append((await watcher.recv_type("message_edited"))["change_seq"])
    assert sorted(numbers) == list(range(1, len(names) * edits + 1))
