"""Cost you can trust (SPEC 10.5, 11): every call priced, estimates that never undercount,
budgets per user, group, room and server, one figure everywhere."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from decimal import Decimal
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from chat.conversations import Conversation
from chat.models import Message
from chat.services import room_create
from llm import budgets, personas, tokens
from llm.generation import get_generator
from llm.models import AiChatSession, GroupQuota, LlmUsage, RoomBudget
from llm.providers.base import ChatMessage, ChatRequest, Finished, TextDelta
from llm.providers.openai import OpenAIProvider
from llm.replies import context_build
from llm.tests.factories import usage_record as recorded
from llm.tests.sessions import open_session
from testkit.upstream import Behavior

pytestmark = pytest.mark.django_db(transaction=True)

KOREAN = "파이썬에서 리스트를 정렬하는 방법을 알려주세요. 성능 차이도 궁금합니다!"
ENGLISH = "How do I sort a list of dictionaries by two keys, newest first, in Python?"
CODE = 'def f(xs):\n    return sorted(xs, key=lambda x: (-x["ts"], x["name"]))  # 정렬\n'
# Rare syllables and emoji: more tokens than characters, so counting characters undercounts.
RARE = "뷁쀍 똠방각하 햏햏 😀🤖🧑‍💻 ㅋㅋㅋ"


# --- the estimate never counts fewer tokens than the provider -----------------------------------
async def _provider_usage(upstream, model, messages, reply):
    upstream.then(Behavior(text=reply, chunk_chars=7))
    request = ChatRequest(model=model, messages=messages, max_output_tokens=4096)
    text, usage = "", None
    async for event in OpenAIProvider().stream(request):
        if isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, Finished):
            usage = event.usage
    assert text == reply
    assert usage is not None
    return request, usage


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
async def test_the_estimate_never_counts_fewer_tokens_than_the_provider(
    upstream, settings, encoding
):
    upstream.tokenizer = encoding
    upstream.models.add("gpt-4")
    model = "gpt-4o-mini" if encoding == "o200k_base" else "gpt-4"
    undercounted_by_chars = False
    for text in (KOREAN, ENGLISH, CODE, RARE, KOREAN * 40):
        messages = [
            ChatMessage("system", settings.LLM_SYSTEM_PROMPT),
            ChatMessage("user", f"alice: {text}"),
        ]
        request, usage = await _provider_usage(upstream, model, messages, text)
        assert tokens.prompt_tokens(request.messages) >= usage.prompt_tokens, text
        assert tokens.completion_tokens(text) >= usage.completion_tokens, text
        undercounted_by_chars |= len(text) < usage.completion_tokens
    # The texts are ones a character count gets wrong: the bound is tested where it matters.
    assert undercounted_by_chars


# --- 10.5: context that fits -------------------------------------------------------------------
def _say(room, session, sender, text):
    return Message.objects.create(room=room, ai_session=session, sender=sender, content=text)


def test_history_is_cut_to_the_context_tokens_oldest_first(room, alice, bob, settings):
    session = AiChatSession.objects.create(room=room, created_by=alice, model="gpt-4o-mini")
    for i in range(6):
        _say(room, session, bob, f"{i}" * 100)
    trigger = _say(room, session, alice, "the question")
    conversation = Conversation(room_id=room.pk, session_id=session.pk)
    persona = ChatMessage("system", settings.LLM_SYSTEM_PROMPT)
    question = ChatMessage("user", "alice: the question")
    each = tokens.message_tokens(ChatMessage("user", "bob: " + "0" * 100))
    # Room for the persona, the question and exactly three earlier messages.
    settings.LLM_CONTEXT_TOKENS = tokens.prompt_tokens([persona, question]) + 3 * each
    context = context_build(
        conversation=conversation, trigger=trigger, system_prompt=persona.content
    )
    assert [m.content for m in context] == [
        settings.LLM_SYSTEM_PROMPT,
        "bob: " + "3" * 100,
        "bob: " + "4" * 100,
        "bob: " + "5" * 100,
        "alice: the question",
    ]
    assert tokens.prompt_tokens(context) <= settings.LLM_CONTEXT_TOKENS
    # One token less: the oldest of the three goes.
    settings.LLM_CONTEXT_TOKENS -= 1
    assert (
        len(
            context_build(conversation=conversation, trigger=trigger, system_prompt=persona.content)
        )
        == 4
    )
    # Over the bound on their own, the persona and the question are still sent.
    settings.LLM_CONTEXT_TOKENS = 10
    context = context_build(
        conversation=conversation, trigger=trigger, system_prompt=persona.content
    )
    assert [m.content for m in context] == [settings.LLM_SYSTEM_PROMPT, "alice: the question"]


async def test_mallory_cannot_spend_bobs_budget_with_long_shared_messages(
    client_for, ws, upstream, room, alice, bob, make_user, settings
):
    """The issue's case: mallory posts five 4,000-character messages into a shared session,
    then bob asks. Bob pays for his call, shared history included, but the history is cut to
    LLM_CONTEXT_TOKENS, so his call is reserved at most that plus his output."""
    mallory = await sync_to_async(make_user)("mallory")
    await sync_to_async(room.participants.add)(mallory)
    settings.LLM_CONTEXT_TOKENS = 8000
    settings.LLM_MAX_OUTPUT_TOKENS = 1024
    settings.LLM_USER_DAILY_TOKEN_BUDGET = 8000 + 1024 + 100
    sid, sock = await open_session(client_for, ws, bob, room)
    session = await sync_to_async(AiChatSession.objects.get)(pk=sid)
    for i in range(5):
        await sync_to_async(_say)(room, session, mallory, chr(ord("a") + i) * 4000)
    await sock.send_json_to({"type": "chat_message", "message": "short question?"})
    end = await sock.recv_type("ai_stream_end")
    assert end["finish_reason"] == "stop"
    sent = upstream.requests[-1].body
    sent_messages = [ChatMessage(m["role"], m["content"]) for m in sent["messages"]]
    assert tokens.prompt_tokens(sent_messages) <= 8000
    # Mallory's most recent message fits and is sent; the older four are cut.
    assert [m["content"][:10] for m in sent["messages"][1:-1]] == ["mallory: e"]
    assert sent["max_completion_tokens"] == 1024
    # Without the bound, the same question would be refused: the whole shared history would
    # be reserved against bob.
    settings.LLM_CONTEXT_TOKENS = 10**6
    await sock.send_json_to({"type": "chat_message", "message": "and again?"})
    error = await sock.recv_type("ai_error")
    assert (error["code"], error["scope"]) == ("budget_exceeded", "user")


# --- 11.1: every call has a cost ----------------------------------------------------------------
async def test_a_stopped_reply_is_charged_in_the_database_not_only_in_redis(
    client_for, ws, upstream, room, alice, bob, settings
):
    settings.LLM_USER_DAILY_TOKEN_BUDGET = 100_000
    upstream.then(Behavior(text="가나다라마" * 200, chunk_chars=5, delay=0.01))
    sid, a = await open_session(client_for, ws, alice, room)
    await a.send_json_to({"type": "chat_message", "message": "write a lot"})
    await a.recv_type("ai_stream_delta")
    await a.send_json_to({"type": "stop_generation"})
    end = await a.recv_type("ai_stream_end")
    assert end["finish_reason"] == "stopped"
    usage = end["usage"]
    assert usage["estimated"] is True
    assert usage["completion_tokens"] > 0
    assert usage["prompt_tokens"] > 0
    assert Decimal(usage["cost_usd"]) > 0
    record = await sync_to_async(LlmUsage.objects.get)(session_id=sid)
    assert record.estimated
    assert record.total_tokens == usage["total_tokens"]
    # The reservation is settled after the reply's last frame: wait for the reply's task.
    running = set(get_generator().tasks)
    if running:
        done, _ = await asyncio.wait(running, timeout=5)
        assert done == running
    # Redis loses the counter (a restart; DEL reproduces it): rebuilt from the database, it
    # still holds the stopped reply's charge.
    limit = budgets.user_limit(alice.pk, timezone.now())
    assert await sync_to_async(limit.spent)() == record.total_tokens
    await sync_to_async(cache.delete)(limit.key)
    assert await sync_to_async(cache.get)(limit.key) is None
    assert await sync_to_async(limit.spent)() == record.total_tokens
    # And the session's totals say how much is estimated.
    c = await sync_to_async(client_for)(bob)
    totals = (await sync_to_async(c.get)(f"/api/llm/sessions/{sid}/")).json()["session"]["usage"]
    assert totals["estimated_requests"] == 1
    assert totals["estimated_tokens"] == totals["total_tokens"] == record.total_tokens
    assert totals["estimated_cost_usd"] == totals["cost_usd"] == usage["cost_usd"]


async def test_a_reply_that_fits_asks_for_what_remains_and_ends_with_length(
    client_for, ws, upstream, room, alice, settings
):
    upstream.tokenizer = "o200k_base"
    upstream.default = Behavior(text="이것은 아주 긴 답변입니다. " * 100, chunk_chars=6)
    settings.LLM_MAX_OUTPUT_TOKENS = 1024
    sid, a = await open_session(client_for, ws, alice, room)
    conversation = Conversation(room_id=room.pk, session_id=sid)
    session = await sync_to_async(AiChatSession.objects.get)(pk=sid)
    trigger = await sync_to_async(_say)(room, session, alice, "x")
    steering = await sync_to_async(personas.session_steering)(session)
    prompt = tokens.prompt_tokens(
        await sync_to_async(context_build)(
            conversation=conversation, trigger=trigger, system_prompt=steering.system_prompt
        )
    )
    await sync_to_async(trigger.delete)()
    # Far below the worst case (prompt + 1,024), room for a short reply.
    settings.LLM_USER_DAILY_TOKEN_BUDGET = prompt + 40
    await a.send_json_to({"type": "chat_message", "message": "x"})
    end = await a.recv_type("ai_stream_end")
    assert upstream.requests[-1].body["max_completion_tokens"] == 40
    assert end["finish_reason"] == "length"
    assert end["usage"]["estimated"] is False
    assert end["usage"]["completion_tokens"] == 40
    spent = await sync_to_async(
        lambda: sum(LlmUsage.objects.filter(user=alice).values_list("total_tokens", flat=True))
    )()
    assert spent <= settings.LLM_USER_DAILY_TOKEN_BUDGET
    # What is left now is below 16 output tokens: the next question is refused.
    await a.send_json_to({"type": "chat_message", "message": "x"})
    error = await a.recv_type("ai_error")
    assert (error["code"], error["scope"]) == ("budget_exceeded", "user")
    assert dt.datetime.fromisoformat(error["resets_at"]) > timezone.now()


# --- 11.2: group quotas and room budgets ---------------------------------------------------------
def _request(max_output=100):
    return ChatRequest(
        model="gpt-4o-mini", messages=[ChatMessage("user", "hello")], max_output_tokens=max_output
    )


def _usage(user, room, tokens_, cost, group=None):
    return recorded(user, room, None, "gpt-4o-mini", tokens_, cost, quota_group=group)


def test_a_user_may_call_while_any_of_their_groups_has_quota_left(room, alice, bob, carol):
    interns = Group.objects.create(name="interns")
    team = Group.objects.create(name="team")
    alice.groups.add(interns, team)
    bob.groups.add(interns)
    GroupQuota.objects.create(group=interns, unit="tokens", period="day", limit=500)
    GroupQuota.objects.create(group=team, unit="usd", period="week", limit=Decimal("0.001"))
    request = _request()
    prompt = budgets.estimate_prompt_tokens(request)
    # bob spends the interns' pool (charged to it).
    _usage(bob, room, 500 - prompt - 15, "0", group=interns)
    with pytest.raises(budgets.BudgetExceeded) as exc:
        budgets.budget_reserve(user_id=bob.pk, room_id=room.pk, request=request)
    assert exc.value.scope == "group"
    # alice has the team's quota left: her call goes ahead, charged to the team.
    reservation = budgets.budget_reserve(user_id=alice.pk, room_id=room.pk, request=request)
    assert reservation.group_id == team.pk
    assert reservation.max_output_tokens == 100
    # Once the team's week is spent too, she is refused; the soonest reset is the interns' day.
    _usage(alice, room, 10, "0.001", group=team)
    budgets.budget_settle(reservation=reservation, charge=budgets.Charge(10, 1000))
    with pytest.raises(budgets.BudgetExceeded) as exc:
        budgets.budget_reserve(user_id=alice.pk, room_id=room.pk, request=request)
    assert exc.value.scope == "group"
    tomorrow = (timezone.now() + dt.timedelta(days=1)).date()
    assert exc.value.resets_at.date() == tomorrow
    # A user in no group with a quota is not limited by any.
    budgets.budget_reserve(user_id=carol.pk, room_id=room.pk, request=request)


def test_group_week_quota_resets_on_monday(alice):
    group = Group.objects.create(name="g")
    quota = GroupQuota.objects.create(group=group, unit="tokens", period="week", limit=10)
    wednesday = dt.datetime(2026, 3, 4, 15, 0, tzinfo=dt.UTC)
    limit = budgets.group_limit(quota, wednesday)
    assert limit.start == dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    assert limit.end == dt.datetime(2026, 3, 9, tzinfo=dt.UTC)


def test_room_budget_api(client_for, room, alice, bob, carol, settings):
    settings.LLM_ROOM_MONTHLY_BUDGET_MAX_USD = Decimal("20")
    path = f"/api/llm/rooms/{room.pk}/budget/"
    owner, member = client_for(alice), client_for(bob)
    empty = member.get(path).json()["budget"]
    assert empty["monthly_usd"] is None
    assert empty["remaining_usd"] is None
    assert empty["can_edit"] is False
    assert empty["max_usd"] == "20.00"
    r = member.generic("PUT", path, '{"monthly_usd": "5"}', content_type="application/json")
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    for bad in ('"20.01"', '"-1"', '"1.001"', '"lots"'):
        r = owner.generic("PUT", path, f'{{"monthly_usd": {bad}}}', content_type="application/json")
        assert r.status_code == 400, bad
    _usage(bob, room, 1000, "0.0000101")
    r = owner.generic("PUT", path, '{"monthly_usd": "5"}', content_type="application/json")
    budget = r.json()["budget"]
    assert budget["monthly_usd"] == "5.00"
    assert budget["can_edit"] is True
    assert budget["spent_usd"] == "0.000011"
    assert budget["remaining_usd"] == "4.999989"
    assert member.get(path).json()["budget"]["remaining_usd"] == "4.999989"
    assert client_for(carol).get(path).status_code == 404
    r = owner.generic("PUT", path, '{"monthly_usd": null}', content_type="application/json")
    assert r.json()["budget"]["monthly_usd"] is None
    assert not RoomBudget.objects.filter(room=room).exists()


def test_a_room_budget_limits_every_member(room, alice, bob):
    request = _request(max_output=1_000_000)
    RoomBudget.objects.create(room=room, monthly_usd=Decimal("0.01"))
    first = budgets.budget_reserve(user_id=alice.pk, room_id=room.pk, request=request)
    # $0.01 of gpt-4o-mini output is about 16,600 tokens: the call asks for that much.
    assert 16_000 < first.max_output_tokens < 17_000
    with pytest.raises(budgets.BudgetExceeded) as exc:
        budgets.budget_reserve(user_id=bob.pk, room_id=room.pk, request=request)
    assert exc.value.scope == "room"
    assert exc.value.resets_at.day == 1
    other = room_create(owner=bob, name="elsewhere")
    budgets.budget_reserve(user_id=bob.pk, room_id=other.pk, request=request)


# --- one figure everywhere ------------------------------------------------------------------------
def _calls(room, alice, bob):
    session = AiChatSession.objects.create(room=room, created_by=alice, model="gpt-4o-mini")
    rows = [
        (alice, 1200, 300, Decimal("0.00036"), False),
        (bob, 950, 80, Decimal("0.0001905"), True),
        (alice, 17, 3, Decimal("0.00000435"), True),
    ]
    for user, p, c, cost, estimated in rows:
        LlmUsage.objects.create(
            provider="openai",
            model="gpt-4o-mini",
            user=user,
            room=room,
            session=session,
            prompt_tokens=p,
            completion_tokens=c,
            total_tokens=p + c,
            estimated=estimated,
            cost_usd=cost,
            latency_ms=1,
            finish_reason="stopped" if estimated else "stop",
        )
    return session


def test_the_api_admin_and_llm_usage_show_the_same_figures(client_for, room, alice, bob, make_user):
    session = _calls(room, alice, bob)
    staff = client_for(make_user("root", is_staff=True, is_superuser=True))
    api = staff.get(f"/api/llm/usage/?session_id={session.pk}&group_by=user").json()
    totals = api["totals"]
    # Independent of the code: 2,550 tokens; $0.00055485 rounds up to $0.000555.
    assert (totals["total_tokens"], totals["cost_usd"]) == (2550, "0.000555")
    assert (totals["estimated_requests"], totals["estimated_tokens"]) == (2, 1050)
    assert totals["estimated_cost_usd"] == "0.000195"
    # The session panel's source.
    panel = client_for(bob).get(f"/api/llm/sessions/{session.pk}/").json()["session"]["usage"]
    assert panel == totals
    # The admin.
    page = staff.get(f"/admin/llm/llmusage/?session__id__exact={session.pk}")
    text = page.content.decode()
    assert "2550 tokens" in text
    assert "$0.000555" in text
    assert "2 request(s), 1050 tokens" in text
    assert "$0.000195" in text
    # llm_usage.
    out = StringIO()
    call_command("llm_usage", "--session", str(session.pk), "--group-by", "user", stdout=out)
    total = next(line for line in out.getvalue().splitlines() if line.startswith("TOTAL"))
    assert total.split() == ["TOTAL", "3", "2167", "383", "2550", "0.000555", "1050", "0.000195"]
    by_user = {g["label"]: g for g in api["groups"]}
    alice_line = next(line for line in out.getvalue().splitlines() if line.startswith("alice"))
    assert alice_line.split()[4:6] == [
        str(by_user["alice"]["total_tokens"]),
        by_user["alice"]["cost_usd"],
    ]


def test_usage_by_room_and_session_and_as_csv(client_for, room, alice, bob):
    session = _calls(room, alice, bob)
    c = client_for(alice)
    by_session = c.get("/api/llm/usage/?group_by=session").json()
    assert [g["key"] for g in by_session["groups"]] == [str(session.pk)]
    assert by_session["groups"][0]["label"].startswith("devs · ")
    # Own usage only: alice's two calls.
    assert by_session["totals"]["total_tokens"] == 1520
    by_room = c.get(f"/api/llm/usage/?group_by=room&room_uuid={room.pk}").json()
    assert by_room["groups"][0]["total_tokens"] == 1520
    r = c.get("/api/llm/usage/?group_by=room&format=csv")
    assert r["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode())))
    assert rows[0][:3] == ["room", "label", "requests"]
    assert rows[1][:2] == [str(room.pk), "devs"]
    assert rows[-1][0] == "TOTAL"
    header = rows[0]
    assert rows[-1][header.index("cost_usd")] == by_room["totals"]["cost_usd"]
    calls = list(csv.reader(io.StringIO(c.get("/api/llm/usage/?format=csv").content.decode())))
    assert len(calls) == 3
    assert {row[calls[0].index("estimated")] for row in calls[1:]} == {"yes", "no"}


def test_a_formula_in_a_room_name_is_not_run_by_a_spreadsheet(client_for, alice, bob):
    room = room_create(owner=alice, name="=HYPERLINK(1)")
    _usage(alice, room, 10, "0.1")
    rows = list(
        csv.reader(
            io.StringIO(client_for(alice).get("/api/llm/usage/?format=csv").content.decode())
        )
    )
    assert rows[1][2] == "'=HYPERLINK(1)"


def test_the_admin_sets_group_quotas_and_keeps_room_budgets_under_the_ceiling(
    client_for, room, make_user, settings
):
    settings.LLM_ROOM_MONTHLY_BUDGET_MAX_USD = Decimal("50")
    staff = client_for(make_user("root", is_staff=True, is_superuser=True))
    group = Group.objects.create(name="support")
    fractional = {"group": group.pk, "unit": "tokens", "period": "week", "limit": "10.5"}
    r = staff.post("/admin/llm/groupquota/add/", fractional)
    assert r.status_code == 200  # the form again, with the error
    assert not GroupQuota.objects.exists()
    r = staff.post("/admin/llm/groupquota/add/", {**fractional, "limit": "50000"})
    assert r.status_code == 302
    assert GroupQuota.objects.get(group=group).limit == 50000
    over = {"room": str(room.pk), "monthly_usd": "50.01"}
    assert staff.post("/admin/llm/roombudget/add/", over).status_code == 200
    assert not RoomBudget.objects.exists()
    assert (
        staff.post("/admin/llm/roombudget/add/", {**over, "monthly_usd": "50"}).status_code == 302
    )
    assert RoomBudget.objects.get(room=room).set_by.username == "root"


def test_the_issues_small_budget_allows_a_short_reply(room, bob, settings):
    """400 tokens a day and the default 1,024 output tokens: the worst case does not fit, but a
    short reply does, so the call asks for what is left instead of being refused."""
    settings.LLM_USER_DAILY_TOKEN_BUDGET = 400
    settings.LLM_MAX_OUTPUT_TOKENS = 1024
    request = ChatRequest(
        model="gpt-4o-mini",
        messages=[
            ChatMessage("system", settings.LLM_SYSTEM_PROMPT),
            ChatMessage("user", "bob: 리스트 정렬은?"),
        ],
        max_output_tokens=settings.LLM_MAX_OUTPUT_TOKENS,
    )
    prompt = budgets.estimate_prompt_tokens(request)
    reservation = budgets.budget_reserve(user_id=bob.pk, room_id=room.pk, request=request)
    assert reservation.max_output_tokens == 400 - prompt
    assert budgets.MIN_OUTPUT_TOKENS <= reservation.max_output_tokens < 1024
