"""Catch me up (SPEC 10.4): a summary of the room chat since a message, for the caller alone, as
JSON or as server-sent events; the most recent messages that fit, saying what was left out; a
provider call like any other (rate, budgets, usage, failures with their codes)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from chat.models import Message
from llm.models import AiChatSession, LlmUsage, RoomBudget
from llm.tests.factories import usage_record
from llm.tests.steering import asked
from testkit.upstream import Behavior

pytestmark = pytest.mark.django_db(transaction=True)

SUMMARY = "- bob proposed Friday\n- alice agreed"
EVENTS = "text/event-stream"


async def chat(room, *lines):
    """Room-chat messages `("alice", "text")`...; their ids."""

    def make():
        from accounts.models import User

        ids = []
        for name, text in lines:
            sender = User.objects.get(username=name)
            ids.append(Message.objects.create(room=room, sender=sender, content=text).pk)
        return ids

    return await sync_to_async(make)()


async def signed_in(user, language="ko"):
    client = AsyncClient()
    client.language = language
    await client.aforce_login(user)
    return client


async def summarise(client, room, body=None, accept="application/json"):
    return await client.post(
        f"/api/chat/rooms/{room.pk}/summary/",
        data=json.dumps(body or {}),
        content_type="application/json",
        headers={"accept": accept, "accept-language": client.language},
    )


async def events(response):
    """The (event, data) pairs of a server-sent events answer."""
    raw = b"".join([chunk async for chunk in response.streaming_content]).decode()
    pairs = []
    for block in raw.split("\n\n"):
        if block:
            name, data = block.split("\n", 1)
            pairs.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return pairs


async def test_a_summary_of_what_was_said_since_a_message(upstream, room, alice, bob, settings):
    upstream.then(Behavior(text=SUMMARY))
    first, *_ = await chat(
        room,
        ("alice", "old news"),
        ("bob", "release on Friday?"),
        ("alice", "@bob yes, Friday"),
        ("bob", "I'll tag it"),
    )

    def elsewhere():
        session = AiChatSession.objects.create(room=room, created_by=bob, model="gpt-4o-mini")
        Message.objects.create(room=room, ai_session=session, sender=bob, content="SESSION ONLY")

    await sync_to_async(elsewhere)()
    r = await summarise(await signed_in(alice), room, {"since": first})
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["summary"] == SUMMARY
    assert (body["message_count"], body["left_out"], body["since"]) == (3, 0, first)
    assert body["finish_reason"] == "stop"
    completion = len(Behavior(text=SUMMARY).chunks())
    assert body["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": completion,
        "cost_usd": str(
            (
                (Decimal(11) * Decimal("0.15") + Decimal(completion) * Decimal("0.60")) / 10**6
            ).quantize(Decimal("0.000001"), rounding="ROUND_CEILING")
        ),
        "estimated": False,
    }
    sent = asked(upstream)
    assert sent["model"] == "gpt-4o-mini"
    assert sent["max_completion_tokens"] == settings.LLM_MAX_OUTPUT_TOKENS
    assert sent["stream"] is True
    system, transcript = sent["messages"]
    assert system["role"] == "system"
    assert "catch alice" in system["content"]
    assert "in Korean" in system["content"]
    assert "did not fit" not in system["content"]
    assert transcript == {
        "role": "user",
        "content": "bob: release on Friday?\nalice: @bob yes, Friday\nbob: I'll tag it",
    }
    usage = await sync_to_async(LlmUsage.objects.get)()
    assert (usage.user_id, usage.room_id, usage.session_id, usage.reply_id) == (
        alice.pk,
        room.pk,
        None,
        None,
    )
    assert (usage.prompt_tokens, usage.completion_tokens) == (11, completion)


async def test_without_since_it_starts_after_the_readers_read_marker(upstream, room, alice, bob):
    from chat.services import room_mark_read

    upstream.then(Behavior(text=SUMMARY))
    _, read, *_ = await chat(
        room,
        ("bob", "seen before"),
        ("bob", "also seen"),
        ("bob", "new: release on Friday?"),
        ("bob", "new: I'll tag it"),
    )
    await sync_to_async(room_mark_read)(room_id=room.pk, user=alice, message_id=read)
    body = (await summarise(await signed_in(alice), room)).json()
    assert (body["since"], body["message_count"]) == (read, 2)
    transcript = asked(upstream)["messages"][1]["content"]
    assert transcript == "bob: new: release on Friday?\nbob: new: I'll tag it"


async def test_it_reads_edited_text_and_leaves_deleted_messages_out(upstream, room, alice, bob):
    upstream.then(Behavior(text=SUMMARY))
    typo, gone, _ = await chat(
        room, ("bob", "relase on Firday"), ("bob", "wrong room, sorry"), ("bob", "tag it")
    )
    client = await signed_in(bob)
    edited = await client.patch(
        f"/api/chat/messages/{typo}/",
        data=json.dumps({"message": "release on Friday"}),
        content_type="application/json",
    )
    assert edited.status_code == 200, edited.content
    assert (await client.delete(f"/api/chat/messages/{gone}/")).status_code == 200
    body = (await summarise(await signed_in(alice), room)).json()
    assert body["message_count"] == 2
    transcript = asked(upstream)["messages"][1]["content"]
    assert transcript == "bob: release on Friday\nbob: tag it"


async def test_the_reader_gets_it_in_their_language(upstream, room, alice):
    await chat(room, ("alice", "hello"))
    await summarise(await signed_in(alice, "en-US"), room)
    assert "in English" in asked(upstream)["messages"][0]["content"]


async def test_the_most_recent_messages_that_fit_and_how_many_were_left_out(
    upstream, room, alice, bob, settings
):
    settings.LLM_CONTEXT_TOKENS = 1500
    texts = [f"message {i:02d} " + "x" * 90 for i in range(40)]
    await chat(room, *[("bob", t) for t in texts])
    body = (await summarise(await signed_in(alice), room)).json()
    kept = body["message_count"]
    assert 1 <= kept < 40
    assert body["left_out"] == 40 - kept
    system, transcript = asked(upstream)["messages"]
    assert transcript["content"] == "\n".join(f"bob: {t}" for t in texts[-kept:])
    assert f"The {40 - kept} oldest messages of the period did not fit" in system["content"]
    sent_bytes = sum(len(m["content"].encode()) for m in asked(upstream)["messages"])
    assert sent_bytes <= settings.LLM_CONTEXT_TOKENS


async def test_the_latest_message_alone_too_long_is_cut_to_fit(upstream, room, alice, settings):
    settings.LLM_CONTEXT_TOKENS = 1000
    await chat(room, ("alice", "짧은 글"), ("alice", "가" * 4000))
    body = (await summarise(await signed_in(alice), room)).json()
    assert (body["message_count"], body["left_out"]) == (1, 1)
    line = asked(upstream)["messages"][1]["content"]
    assert line.startswith("alice: 가가가")
    assert sum(len(m["content"].encode()) for m in asked(upstream)["messages"]) <= 1000


async def test_as_server_sent_events_for_the_caller_alone(ws, upstream, room, alice, bob):
    upstream.then(Behavior(text=SUMMARY, chunk_chars=3))
    await chat(room, ("bob", "release on Friday?"))
    bobs = await ws(f"/ws/chat/{room.pk}/", bob)
    r = await summarise(await signed_in(alice), room, accept=EVENTS)
    assert r.status_code == 200
    assert r["Content-Type"].startswith(EVENTS)
    assert r["Cache-Control"] == "no-cache"
    got = await events(r)
    names = [name for name, _ in got]
    assert names[-1] == "done"
    assert set(names[:-1]) == {"delta"}
    assert len(names) > 2
    assert "".join(d["delta"] for n, d in got if n == "delta") == SUMMARY
    done = got[-1][1]
    assert done["summary"] == SUMMARY
    assert (done["message_count"], done["left_out"]) == (1, 0)
    assert done["usage"]["estimated"] is False
    # Nobody else heard of it: the next frame bob gets is the next message.
    alices = await ws(f"/ws/chat/{room.pk}/", alice)
    await alices.send_json_to({"type": "chat_message", "message": "marker"})
    assert (await bobs.recv())["message"] == "marker"


async def test_a_reader_who_leaves_ends_the_call_and_it_is_still_recorded(upstream, room, alice):
    upstream.then(Behavior(text="y" * 400, chunk_chars=2, delay=0.02))
    await chat(room, ("alice", "long"))
    r = await summarise(await signed_in(alice), room, accept=EVENTS)
    first = asyncio.Event()
    got: list[bytes] = []

    async def read():
        async for chunk in r.streaming_content:
            got.append(chunk)
            first.set()

    # As the server does when the client goes away: the task writing the answer is cancelled.
    reading = asyncio.create_task(read())
    await first.wait()
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reading
    assert got[0].startswith(b"event: delta")
    usage = await sync_to_async(LlmUsage.objects.get)()
    assert usage.finish_reason == "stopped"
    assert usage.estimated is True
    # The provider's request ended with it: it does not run on, billing, to its end.
    (call,) = upstream.requests
    assert await asyncio.to_thread(call.finished.wait, 5), "the provider stream went on"
    assert (call.hung_up, call.completed) == (True, False)


async def test_nothing_new_is_no_call(upstream, room, alice):
    (last,) = await chat(room, ("alice", "seen it"))
    client = await signed_in(alice)
    body = (await summarise(client, room, {"since": last})).json()
    assert body == {
        "result": "success",
        "summary": "",
        "message_count": 0,
        "left_out": 0,
        "since": last,
        "finish_reason": None,
        "usage": None,
    }
    got = await events(await summarise(client, room, {"since": last}, accept=EVENTS))
    assert [name for name, _ in got] == ["done"]
    assert upstream.requests == []


async def test_it_is_a_provider_call_like_any_other(upstream, room, alice, bob, carol, settings):
    await chat(room, ("bob", "news"))
    assert (await summarise(await signed_in(carol), room)).status_code == 404
    r = await summarise(await signed_in(alice), room, {"since": -1})
    assert (r.status_code, r.json()["code"]) == (400, "validation_error")

    settings.LLM_USER_RATE = "1/minute"
    client = await signed_in(alice)
    assert (await summarise(client, room)).status_code == 200
    limited = await summarise(client, room)
    assert (limited.status_code, limited.json()["code"]) == (429, "rate_limited")
    assert limited.json()["retry_after"] >= 1
    assert len(upstream.requests) == 1

    settings.LLM_USER_RATE = "100/minute"
    settings.LLM_USER_DAILY_TOKEN_BUDGET = 100
    over = await summarise(await signed_in(bob), room)
    assert (over.status_code, over.json()["code"]) == (429, "budget_exceeded")
    got = await events(await summarise(await signed_in(bob), room, accept=EVENTS))
    assert [(n, d["code"]) for n, d in got] == [("error", "budget_exceeded")]
    assert len(upstream.requests) == 1


async def test_a_provider_failure_gets_its_code(upstream, room, alice):
    upstream.then(Behavior(status=500), Behavior(status=500))
    await chat(room, ("alice", "news"))
    r = await summarise(await signed_in(alice), room)
    assert (r.status_code, r.json()["code"]) == (502, "upstream_unavailable")
    got = await events(await summarise(await signed_in(alice), room, accept=EVENTS))
    assert [(n, d["code"]) for n, d in got] == [("error", "upstream_unavailable")]
    codes = await sync_to_async(
        lambda: list(LlmUsage.objects.values_list("error_code", flat=True))
    )()
    assert codes == ["upstream_unavailable", "upstream_unavailable"]


async def test_without_a_provider_it_says_what_to_set(room, alice, settings):
    settings.LLM_PROVIDER = ""
    settings.OPENAI_API_KEY = ""
    settings.DEBUG = False
    await chat(room, ("alice", "news"))
    r = await summarise(await signed_in(alice), room)
    assert (r.status_code, r.json()["code"]) == (503, "ai_not_configured")


def _period_end(period):
    """When the current UTC day or month ends (TIME_ZONE is UTC)."""
    today = timezone.now().astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return today + dt.timedelta(days=1)
    first = today.replace(day=1)
    return first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)


@pytest.mark.parametrize(
    ("scope", "period"), [("user", "day"), ("room", "month"), ("server", "month")]
)
async def test_a_refusal_by_a_budget_says_which_and_until_when(
    upstream, room, alice, bob, settings, scope, period
):
    if scope == "user":
        settings.LLM_USER_DAILY_TOKEN_BUDGET = 10
    elif scope == "server":
        settings.LLM_MONTHLY_COST_BUDGET_USD = Decimal("0.000001")
    else:
        # The room's budget, spent by another member this month.
        def spend():
            RoomBudget.objects.create(room=room, monthly_usd=Decimal("0.01"))
            session = AiChatSession.objects.create(room=room, created_by=bob, model="gpt-4o-mini")
            usage_record(bob, room, session, "gpt-4o-mini", 100, "0.01")

        await sync_to_async(spend)()
    await chat(room, ("bob", "news"))
    r = await summarise(await signed_in(alice), room)
    assert r.status_code == 429
    body = r.json()
    assert (body["code"], body["scope"]) == ("budget_exceeded", scope)
    assert dt.datetime.fromisoformat(body["resets_at"]) == _period_end(period)
    got = await events(await summarise(await signed_in(alice), room, accept=EVENTS))
    assert [name for name, _ in got] == ["error"]
    error = got[0][1]
    assert (error["code"], error["scope"]) == ("budget_exceeded", scope)
    assert dt.datetime.fromisoformat(error["resets_at"]) == _period_end(period)
    assert upstream.requests == []
    assert await sync_to_async(LlmUsage.objects.filter(user=alice).count)() == 0
