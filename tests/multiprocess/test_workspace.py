"""`/ws/me/` and presence across real server processes over PostgreSQL and Redis (SPEC 9.1, 9.3):
every event reaches every `/ws/me/` socket of its user on any process, in order, once; the users
of a process that is killed go offline within 60 s."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from testkit.servers import ServerProcess

from .conftest import end_server_connections
from .conftest import server_env as make_server_env
from .test_scaleout import Peer, call_api, make_room, start_session

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

# What SPEC 9.3 allows between a process dying and its users shown offline.
OFFLINE_WITHIN_SECONDS = 60


async def frames_until(peer: Peer, last: str, *, skip: tuple[str, ...] = ("presence",)) -> list:
    """The frames up to and including the first of type `last`, without those in `skip`."""
    frames = []
    while True:
        frame = await peer.recv()
        if frame["type"] in skip:
            continue
        frames.append(frame)
        if frame["type"] == last:
            return frames


async def own_echo(peer: Peer) -> dict:
    """The server's echo of the message `peer` just sent (others' messages may come first)."""
    while True:
        frame = await peer.recv_type("chat_message")
        if frame["is_self"]:
            return frame


async def test_events_reach_every_socket_of_the_user_on_both_processes_once_and_in_order(
    cluster, peers
):
    a, b = cluster.processes[:2]
    room, cookies = await make_room("alice", "bob", "carol")
    _, dave_cookies = await make_room("dave")
    me_on_a = await peers(a, "/ws/me/", cookies["bob"])
    me_on_b = await peers(b, "/ws/me/", cookies["bob"])
    dave_me = await peers(a, "/ws/me/", dave_cookies["dave"])
    alice = await peers(a, f"/ws/chat/{room}/", cookies["alice"])
    carol = await peers(b, f"/ws/chat/{room}/", cookies["carol"])

    # Senders on both processes, taking turns: each waits for its own echo, so the commits
    # (and the order every member must see) are alice, carol, alice, carol.
    said = []
    for sender, text in [
        (alice, "one"),
        (carol, "two @bob"),
        (alice, "three"),
        (carol, "@BOB four"),
    ]:
        await sender.send(type="chat_message", message=text)
        said.append(await own_echo(sender))
    status, _ = await call_api(
        b, cookies["alice"], "POST", f"/api/chat/rooms/{room}/participants/", {"username": "dave"}
    )
    assert status == 200
    status, _ = await call_api(
        a, cookies["alice"], "PATCH", f"/api/chat/rooms/{room}/", {"name": "renamed"}
    )
    assert status == 200
    status, _ = await call_api(
        b,
        cookies["bob"],
        "POST",
        f"/api/chat/rooms/{room}/read/",
        {"message_id": said[1]["message_id"]},
    )
    assert status == 200

    for me in (me_on_a, me_on_b):
        frames = await frames_until(me, "read")
        assert [f["type"] for f in frames] == [
            "room_activity",
            "room_activity",
            "room_activity",
            "room_activity",
            "member_added",
            "room_updated",
            "read",
        ], frames
        activity = frames[:4]
        assert [f["message_id"] for f in activity] == [m["message_id"] for m in said]
        assert [f["unread_count"] for f in activity] == [1, 2, 3, 4]
        assert [f["mention"] for f in activity] == [False, True, False, True]
        assert [f["username"] for f in activity] == ["alice", "carol", "alice", "carol"]
        assert frames[4]["username"] == "dave"
        assert frames[5]["room"]["name"] == "renamed"
        assert frames[5]["room"]["unread_count"] == 4
        assert frames[5]["room"]["is_owner"] is False
        assert frames[6]["unread_count"] == 2
        assert frames[6]["mention_count"] == 1

    added = await frames_until(dave_me, "room_added")
    assert [f["type"] for f in added] == ["room_added"]
    assert added[0]["room"]["name"] == "scale"
    updated = await frames_until(dave_me, "room_updated")
    assert [f["type"] for f in updated] == ["room_updated"]
    assert updated[0]["room"]["is_owner"] is False
    # dave, added through process B, hears the room on process A from then on.
    await alice.send(type="chat_message", message="welcome dave")
    welcome = await own_echo(alice)
    frames = await frames_until(dave_me, "room_activity")
    assert [(f["type"], f["message_id"], f["unread_count"]) for f in frames] == [
        ("room_activity", welcome["message_id"], 1)
    ]


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for proc in started:
        proc.stop()
    end_server_connections()


async def test_the_users_of_a_killed_process_go_offline_within_60_s(
    upstream, servers, tmp_path: Path, peers
):
    # The default PRESENCE_TTL_SECONDS: the bound under test is the one a deployment gets.
    env = make_server_env(upstream, f"{settings.CHANNEL_PREFIX}-presence-{uuid.uuid4().hex[:8]}")
    env.pop("PRESENCE_TTL_SECONDS", None)

    def start(name: str) -> ServerProcess:
        proc = ServerProcess(env=env, log_path=tmp_path / f"{name}.log", lifespan=True).start()
        servers.append(proc)
        return proc

    survivor, doomed = start("survivor"), start("doomed")
    room, cookies = await make_room("bob", "carol")
    session = await start_session(survivor, cookies["bob"], room)
    bob_me = await peers(survivor, "/ws/me/", cookies["bob"])
    bob_session = await peers(survivor, f"/ws/llm/{session}/", cookies["bob"])
    assert (await bob_session.recv_type("session_viewers"))["usernames"] == ["bob"]

    await peers(doomed, f"/ws/chat/{room}/", cookies["carol"])
    await peers(doomed, f"/ws/llm/{session}/", cookies["carol"])
    online = await bob_me.recv_type("presence")
    assert (online["username"], online["online"]) == ("carol", True)
    viewers = await bob_session.recv_type("session_viewers")
    assert viewers["usernames"] == ["bob", "carol"]
    status, body = await call_api(survivor, cookies["bob"], "GET", f"/api/chat/rooms/{room}/")
    assert body["room"]["online"] == ["bob", "carol"]

    doomed.kill()
    killed_at = time.monotonic()
    offline = await bob_me.recv_type("presence", wait=OFFLINE_WITHIN_SECONDS + 5)
    took = time.monotonic() - killed_at
    assert (offline["username"], offline["online"]) == ("carol", False)
    assert took <= OFFLINE_WITHIN_SECONDS, f"carol went offline {took:.0f} s after the kill"
    left = await bob_session.recv_type("session_viewers", wait=OFFLINE_WITHIN_SECONDS)
    assert left["usernames"] == ["bob"]
    status, body = await call_api(survivor, cookies["bob"], "GET", f"/api/chat/rooms/{room}/")
    assert status == 200
    assert body["room"]["online"] == ["bob"]
