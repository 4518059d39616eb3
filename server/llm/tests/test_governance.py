"""The seed's TODO list: key validation, usage, cost, budgets, rate limits (SPEC 7)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.checks import run_checks
from django.core.management import call_command
from django.utils import timezone

from llm import budgets, prices
from llm.models import AiChatSession, LlmUsage
from llm.providers.base import ChatMessage, ChatRequest
from llm.providers.openai import reset_clients
from llm.tests.factories import usage_record
from llm.tests.sessions import open_session
from testkit.upstream import Behavior

pytestmark = pytest.mark.django_db(transaction=True)


# --- key validation ---------------------------------------------------------------------------
def _llm_warnings():
    return {w.id: w for w in run_checks() if w.id and w.id.startswith("llm.")}


def test_check_warns_about_a_missing_key(settings):
    settings.OPENAI_API_KEY = ""
    settings.LLM_PROVIDER = ""
    assert "llm.W001" in _llm_warnings()


def test_check_warns_about_a_malformed_key(settings):
    settings.OPENAI_API_KEY = "not a key"
    settings.OPENAI_BASE_URL = ""
    settings.LLM_PROVIDER = ""
    assert "llm.W002" in _llm_warnings()


def test_check_is_quiet_with_a_well_formed_key(settings):
    settings.OPENAI_API_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
    settings.LLM_PROVIDER = ""
    settings.LLM_MODEL = "gpt-4o-mini"
    assert _llm_warnings() == {}


async def _llm_check(*args):
    out, err = StringIO(), StringIO()

    def run():
        try:
            call_command("llm_check", *args, stdout=out, stderr=err)
        except SystemExit as exc:
            return exc.code
        return 0

    code = await sync_to_async(run, thread_sensitive=False)()
    return code, out.getvalue() + err.getvalue()


async def test_llm_check_good_key(upstream):
    code, text = await _llm_check()
    assert code == 0
    assert "OK" in text
    assert upstream.api_key not in text


async def test_llm_check_bad_key(upstream, settings):
    settings.OPENAI_API_KEY = "sk-wrong-0123456789abcdefghij"
    reset_clients()
    code, text = await _llm_check()
    assert code == 2
    assert "bad_key" in text
    assert "sk-wrong" not in text


async def test_llm_check_unknown_model(upstream):
    code, text = await _llm_check("--model", "no-such-model")
    assert code == 3
    assert "unknown_model" in text


async def test_llm_check_no_server(upstream, settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    reset_clients()
    code, text = await _llm_check()
    assert code == 4
    assert "unreachable" in text


async def test_llm_check_not_configured(settings):
    settings.LLM_PROVIDER = ""
    settings.OPENAI_API_KEY = ""
    settings.DEBUG = False
    code, text = await _llm_check()
    assert code == 1
    assert "OPENAI_API_KEY" in text


async def test_start_up_prepares_the_openai_client_and_nothing_for_echo(settings):
    import asyncio

    from llm import providers
    from llm.providers import openai as openai_provider

    loop = asyncio.get_running_loop()
    settings.LLM_PROVIDER = "echo"
    reset_clients()
    await providers.warm_up()
    assert loop not in openai_provider._clients
    settings.LLM_PROVIDER = "openai"
    settings.OPENAI_API_KEY = "sk-test-0123456789abcdefghijklmnop"
    await providers.warm_up()
    assert loop in openai_provider._clients
    reset_clients()


async def test_a_refused_key_pauses_replies_server_wide(
    client_for, ws, upstream, room, alice, bob, settings
):
    _, a = await open_session(client_for, ws, alice, room)
    settings.OPENAI_API_KEY = "sk-revoked-0123456789abcdefghij"
    reset_clients()
    await a.send_json_to({"type": "chat_message", "message": "one"})
    assert (await a.recv_type("ai_error"))["code"] == "upstream_auth"
    calls = len(upstream.requests)
    # Another member, another session: paused without asking the provider again.
    _, b = await open_session(client_for, ws, bob, room)
    await b.send_json_to({"type": "chat_message", "message": "two"})
    err = await b.recv_type("ai_error")
    assert err["code"] == "upstream_auth"
    assert "paused" in err["detail"]
    assert len(upstream.requests) == calls


# --- cost ---------------------------------------------------------------------------------------
def test_cost_is_decimal_arithmetic():
    assert prices.cost_usd("gpt-4o-mini", 1000, 500) == Decimal("0.00045")
    assert prices.cost_usd("gpt-4o", 1_000_000, 1_000_000) == Decimal("12.50")
    assert prices.cost_usd("gpt-4o-mini-2024-07-18", 2_000_000, 0) == Decimal("0.30")
    assert prices.cost_usd("unknown-model", 10, 10) is None


def test_prices_can_be_overridden_and_zero(settings):
    settings.LLM_PRICES = {
        "llama3.1": {"input": 0, "output": 0},
        "gpt-4o-mini": {"input": "1", "output": "2"},
    }
    prices.price_table.cache_clear()
    try:
        assert prices.cost_usd("llama3.1", 5000, 5000) == Decimal(0)
        assert prices.cost_usd("gpt-4o-mini", 1_000_000, 1_000_000) == Decimal(3)
    finally:
        prices.price_table.cache_clear()


def test_bad_prices_are_a_clear_error(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.LLM_PRICES = {"m": {"input": "cheap", "output": 1}}
    prices.price_table.cache_clear()
    try:
        with pytest.raises(ImproperlyConfigured, match="not a number"):
            prices.price_table()
    finally:
        prices.price_table.cache_clear()


# --- usage ----------------------------------------------------------------------------------------
async def test_usage_sums_equal_what_the_upstream_reported(client_for, ws, upstream, room, alice):
    upstream.then(
        Behavior(text="abcdefgh", chunk_chars=2, prompt_tokens=30),
        Behavior(text="xyz", chunk_chars=1, prompt_tokens=50),
    )
    sid, a = await open_session(client_for, ws, alice, room)
    for text in ("q1", "q2"):
        await a.send_json_to({"type": "chat_message", "message": text})
        await a.recv_type("ai_stream_end")
    c = await sync_to_async(client_for)(alice)
    usage = (await sync_to_async(c.get)("/api/llm/usage/")).json()
    assert usage["totals"]["requests"] == 2
    assert usage["totals"]["prompt_tokens"] == 80
    assert usage["totals"]["completion_tokens"] == 4 + 3
    assert usage["totals"]["total_tokens"] == 87
    # (80 x $0.15 + 7 x $0.60) / 1M = $0.0000162, written with 6 decimals, rounded up.
    assert usage["totals"]["cost_usd"] == "0.000017"
    assert usage["totals"]["estimated_requests"] == 0
    detail = (await sync_to_async(c.get)(f"/api/llm/sessions/{sid}/")).json()
    assert detail["session"]["usage"]["total_tokens"] == 87
    record = await sync_to_async(LlmUsage.objects.order_by("id").first)()
    assert record.time_to_first_token_ms is not None
    assert record.latency_ms >= record.time_to_first_token_ms
    assert record.finish_reason == "stop"
    assert record.model == "gpt-4o-mini"


@pytest.mark.django_db
def test_usage_api_groups_and_scopes(client_for, room, alice, bob, make_user):
    session = AiChatSession.objects.create(room=room, created_by=alice, model="gpt-4o-mini")
    usage_record(alice, room, session, "gpt-4o-mini", 100, "0.01")
    usage_record(alice, room, session, "gpt-4o", 10, "0.10")
    usage_record(bob, room, session, "gpt-4o", 5, "0.05")
    mine = client_for(alice).get("/api/llm/usage/?group_by=model").json()
    assert mine["scope"] == "own"
    assert mine["totals"]["total_tokens"] == 110
    assert {g["key"]: g["total_tokens"] for g in mine["groups"]} == {
        "gpt-4o": 10,
        "gpt-4o-mini": 100,
    }
    staff = make_user("root", is_staff=True)
    everyone = client_for(staff).get("/api/llm/usage/?group_by=user").json()
    assert everyone["scope"] == "everyone"
    assert {g["label"]: Decimal(g["cost_usd"]) for g in everyone["groups"]} == {
        "alice": Decimal("0.11"),
        "bob": Decimal("0.05"),
    }
    by_room = client_for(staff).get("/api/llm/usage/?group_by=room").json()
    assert by_room["groups"][0]["label"] == "devs"
    by_day = client_for(alice).get("/api/llm/usage/?group_by=day").json()
    assert by_day["groups"][0]["key"] == timezone.now().date().isoformat()
    assert client_for(alice).get("/api/llm/usage/?group_by=planet").status_code == 400
    old = client_for(alice).get("/api/llm/usage/?since=2020-01-01&until=2020-02-01").json()
    assert old["totals"]["requests"] == 0
    assert (
        client_for(alice).get("/api/llm/usage/?since=2020-02-01&until=2020-01-01").status_code
        == 400
    )


@pytest.mark.django_db
def test_llm_usage_command_prints_the_table(room, alice, bob):
    session = AiChatSession.objects.create(room=room, created_by=alice, model="gpt-4o-mini")
    usage_record(alice, room, session, "gpt-4o-mini", 100, "0.01")
    usage_record(bob, room, session, "gpt-4o-mini", 5, "0.02")
    out = StringIO()
    call_command("llm_usage", "--group-by", "user", stdout=out)
    text = out.getvalue()
    assert "alice" in text
    assert "bob" in text
    total = next(line for line in text.splitlines() if line.startswith("TOTAL"))
    assert "105" in total
    assert "0.03" in total


# --- budgets -------------------------------------------------------------------------------------
def _request(max_output=100):
    return ChatRequest(
        model="gpt-4o-mini", messages=[ChatMessage("user", "hello")], max_output_tokens=max_output
    )


@pytest.mark.django_db
def test_daily_token_budget_edges(room, alice, settings):
    request = _request()
    prompt = budgets.estimate_prompt_tokens(request)
    # Room for the prompt and 15 output tokens: too little for a reply.
    settings.LLM_USER_DAILY_TOKEN_BUDGET = prompt + budgets.MIN_OUTPUT_TOKENS - 1
    with pytest.raises(budgets.BudgetExceeded) as exc:
        budgets.budget_reserve(user_id=alice.pk, room_id=room.pk, request=request)
    tomorrow = (timezone.now() + dt.timedelta(days=1)).date()
    assert exc.value.resets_at.date() == tomorrow
    assert exc.value.scope == "user"
    # 16 output tokens fit: the call asks for those instead of being refused.
    settings.LLM_USER_DAILY_TOKEN_BUDGET = prompt + budgets.MIN_OUTPUT_TOKENS
    reservation = budgets.budget_reserve(user_id=alice.pk, room_id=room.pk, request=request)
    assert reservation.max_output_tokens == budgets.MIN_OUTPUT_TOKENS
    # The reservation holds the budget: a concurrent second call cannot overshoot.
    with pytest.raises(budgets.BudgetExceeded):
        budgets.budget_reserve(user_id=alice.pk, room_id=room.pk, request=request)
    # Settled to what was charged, the rest is free again.
    budgets.budget_settle(reservation=reservation, charge=budgets.Charge(tokens=5, micro_usd=0))
    settings.LLM_USER_DAILY_TOKEN_BUDGET = prompt + budgets.MIN_OUTPUT_TOKENS + 5
    again = budgets.budget_reserve(user_id=alice.pk, room_id=room.pk, request=request)
    assert again.max_output_tokens == budgets.MIN_OUTPUT_TOKENS


@pytest.mark.django_db
def test_daily_budget_counts_recorded_usage(room, alice, bob, settings):
    session = AiChatSession.objects.create(room=room, created_by=alice, model="gpt-4o-mini")
    usage_record(alice, room, session, "gpt-4o-mini", 1000, "0")
    request = _request()
    prompt = budgets.estimate_prompt_tokens(request)
    settings.LLM_USER_DAILY_TOKEN_BUDGET = 1000 + prompt + budgets.MIN_OUTPUT_TOKENS - 1
    with pytest.raises(budgets.BudgetExceeded):
        budgets.budget_reserve(user_id=alice.pk, room_id=room.pk, request=request)
    budgets.budget_reserve(user_id=bob.pk, room_id=room.pk, request=request)


@pytest.mark.django_db
def test_monthly_cost_budget_edges(room, alice, bob, settings):
    request = _request(max_output=1_000_000)
    worst = prices.cost_usd("gpt-4o-mini", budgets.estimate_prompt_tokens(request), 1_000_000)
    settings.LLM_MONTHLY_COST_BUDGET_USD = worst - Decimal("0.000001")
    # Less than the worst case: the call asks for fewer output tokens.
    lowered = budgets.budget_reserve(user_id=alice.pk, room_id=room.pk, request=request)
    assert lowered.max_output_tokens < 1_000_000
    assert lowered.worst.micro_usd <= budgets.micro_usd(settings.LLM_MONTHLY_COST_BUDGET_USD)
    # The whole server shares it: nothing is left for bob.
    with pytest.raises(budgets.BudgetExceeded) as exc:
        budgets.budget_reserve(user_id=bob.pk, room_id=room.pk, request=request)
    assert exc.value.resets_at.day == 1
    assert exc.value.scope == "server"


async def test_over_budget_gets_ai_error_and_keeps_the_message(
    client_for, ws, upstream, room, alice, settings
):
    settings.LLM_USER_DAILY_TOKEN_BUDGET = 5
    _, a = await open_session(client_for, ws, alice, room)
    await a.send_json_to({"type": "chat_message", "message": "expensive question"})
    mine = await a.recv_type("chat_message")
    err = await a.recv_type("ai_error")
    assert err["code"] == "budget_exceeded"
    assert err["scope"] == "user"
    assert err["resets_at"]
    assert upstream.requests == []
    from chat.models import Message

    assert await sync_to_async(Message.objects.filter(pk=mine["message_id"]).exists)()
    assert await sync_to_async(LlmUsage.objects.count)() == 0


# --- rate limits across processes ----------------------------------------------------------------
@pytest.mark.redis
async def test_two_sockets_share_one_limit_in_redis(client_for, ws, room, alice, settings):
    settings.LLM_PROVIDER = "echo"
    settings.LLM_USER_RATE = "3/minute"
    sid, a = await open_session(client_for, ws, alice, room)
    b = await ws(f"/ws/llm/{sid}/", alice)
    await b.recv_type("ai_joined")
    for sock, text in ((a, "1"), (b, "2"), (a, "3")):
        await sock.send_json_to({"type": "chat_message", "message": text})
        while (await sock.recv_type("chat_message"))["message"] != text:
            pass
    # A fresh limiter (as in another server process) sees the same count.
    from core import ratelimit

    ratelimit._limiter.cache_clear()
    await b.send_json_to({"type": "chat_message", "message": "4"})
    assert (await b.recv_type("ai_error"))["code"] == "rate_limited"


# --- metrics ------------------------------------------------------------------------------------
def _metric(name, **labels):
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0


async def test_a_reply_is_counted_in_the_metrics(client_for, ws, upstream, room, alice, settings):
    before = {
        "requests": _metric("chat_ai_requests_total", model="gpt-4o-mini", outcome="ok"),
        "prompt": _metric("chat_ai_tokens_total", model="gpt-4o-mini", kind="prompt"),
        "ttft": _metric("chat_ai_time_to_first_token_seconds_count", model="gpt-4o-mini"),
        "latency": _metric("chat_ai_reply_latency_seconds_count", model="gpt-4o-mini"),
        "limited": _metric("chat_ai_refusals_total", reason="rate_limited"),
    }
    settings.LLM_USER_RATE = "1/minute"
    _, a = await open_session(client_for, ws, alice, room)
    await a.send_json_to({"type": "chat_message", "message": "count me"})
    await a.recv_type("ai_stream_end")
    await a.send_json_to({"type": "chat_message", "message": "too soon"})
    await a.recv_type("ai_error")
    assert (
        _metric("chat_ai_requests_total", model="gpt-4o-mini", outcome="ok")
        == before["requests"] + 1
    )
    prompt = _metric("chat_ai_tokens_total", model="gpt-4o-mini", kind="prompt")
    assert prompt == before["prompt"] + upstream.default.prompt_tokens
    assert (
        _metric("chat_ai_time_to_first_token_seconds_count", model="gpt-4o-mini")
        == before["ttft"] + 1
    )
    assert (
        _metric("chat_ai_reply_latency_seconds_count", model="gpt-4o-mini") == before["latency"] + 1
    )
    assert _metric("chat_ai_refusals_total", reason="rate_limited") == before["limited"] + 1
