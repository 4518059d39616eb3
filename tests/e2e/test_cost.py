"""Cost in the browser (SPEC 11): the session panel and the usage page show the API's figures
for the same calls, a stopped reply included (estimated, never 0), and a room's budget is set
by its owner and seen by its members where they look."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from testkit.upstream import Behavior, FakeUpstream

from .conftest import Person
from .test_ai import ai_reply, room_with, send, start_session
from .test_layout import PHONE


def shown_usd(api_value: str) -> str:
    """The pages' rule, written here independently: the API's 6-decimal figure, its trailing
    zeros dropped down to the cents, thousands grouped."""
    whole, frac = api_value.split(".")
    return f"${int(whole):,}.{frac.rstrip('0').ljust(2, '0')}"


def shown_count(value: int) -> str:
    return f"{value:,}"


def test_the_session_panel_and_the_usage_page_show_the_apis_figures(
    person: Callable[..., Person], upstream: FakeUpstream, shoot: Callable[..., None]
) -> None:
    ana = person("ana")
    ben = person("ben")
    room = room_with(ana, ben)
    session = start_session(ana, room)

    upstream.on("short-one", Behavior(pieces=("Sure, ", "here ", "it is."), prompt_tokens=40))
    send(ana, "a short-one please")
    ai_reply(ana.page).locator(".body", has_text="it is.").wait_for()
    # A long reply, stopped: the provider sends no usage, the call is estimated.
    upstream.on("long-one", Behavior(pieces=tuple(f"토큰{n} " for n in range(300)), delay=0.03))
    send(ana, "a long-one please")
    ana.page.locator("#tail li.msg.ai.streaming .body", has_text="토큰5").wait_for()
    ana.page.click("#stop-button")
    ai_reply(ana.page).locator(".finish").wait_for()

    usage = ana.api("GET", f"/api/llm/sessions/{session}/")["session"]["usage"]
    assert usage["requests"] == 2
    assert usage["estimated_requests"] == 1
    assert usage["estimated_tokens"] > 0
    assert usage["cost_usd"] != "0.000000"

    def panel(figure: str) -> str:
        return str(ana.page.inner_text(f'#session-usage [data-figure="{figure}"]'))

    ana.page.wait_for_function(
        "n => document.querySelector('#session-usage [data-figure=\"tokens\"]')?.textContent === n",
        arg=shown_count(usage["total_tokens"]),
    )
    assert panel("cost") == shown_usd(usage["cost_usd"])
    estimated = panel("estimated")
    assert shown_count(usage["estimated_tokens"]) in estimated
    assert shown_usd(usage["estimated_cost_usd"]) in estimated

    # The usage page, for the period it shows (the last 30 days).
    since = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=29)).isoformat()
    totals = ana.api("GET", f"/api/llm/usage/?since={since}")["totals"]
    assert totals == usage  # ana's only calls are this session's
    ana.goto("/usage/")
    ana.page.wait_for_selector("#chart-session svg rect.bar")

    def card(figure: str) -> str:
        return str(ana.page.inner_text(f'#totals [data-figure="{figure}"] .stat-value'))

    assert card("requests") == "2"
    assert card("tokens") == shown_count(totals["total_tokens"])
    assert card("cost") == shown_usd(totals["cost_usd"])
    assert card("estimated") == shown_usd(totals["estimated_cost_usd"])
    # Broken down by room and by session; the CSV link carries the same period.
    assert ana.page.locator("#chart-room svg rect.bar").evaluate_all(
        "els => els.map(e => e.dataset.label)"
    ) == ["AI room"]
    assert ana.page.locator("#chart-session svg rect.bar").count() == 1
    assert ana.page.get_attribute("#csv", "href") == f"/api/llm/usage/?since={since}&format=csv"
    shoot(ana, "usage-cost", full_page=True)
    assert ana.errors == []


def test_the_owner_sets_a_room_budget_and_members_see_what_is_left(
    person: Callable[..., Person], upstream: FakeUpstream, shoot: Callable[..., None]
) -> None:
    ana = person("ana")
    ben = person("ben", **PHONE)
    room = room_with(ana, ben)
    session = start_session(ana, room)
    upstream.on("priced", Behavior(pieces=("a ", "priced ", "answer"), prompt_tokens=3000))
    send(ana, "a priced question")
    ai_reply(ana.page).locator(".body", has_text="answer").wait_for()

    room_path = f"/rooms/{room['id']}/"
    ana.open_chat(room_path)
    ana.page.wait_for_selector("#budget-form")
    ana.page.fill("#budget-usd", "12.5")
    ana.page.click("#budget-form button[type=submit]")
    ana.page.locator(".budget-left", has_text="$12.50").wait_for()
    budget = ana.api("GET", f"/api/llm/rooms/{room['id']}/budget/")["budget"]
    assert budget["monthly_usd"] == "12.50"
    assert budget["spent_usd"] != "0.000000"
    left = shown_usd(budget["remaining_usd"])
    ana.page.locator(".budget-left", has_text=left).wait_for()
    assert "$12.50" in ana.page.inner_text(".budget-left")
    ana.page.locator("#budget-form").scroll_into_view_if_needed()
    shoot(ana, "room-budget")
    # Over this server's limit: the field refuses it (its maximum is the API's max_usd), and
    # nothing changes.
    ana.page.fill("#budget-usd", "100000")
    ana.page.click("#budget-form button[type=submit]")
    assert ana.page.eval_on_selector("#budget-usd", "e => e.validity.rangeOverflow") is True
    assert ana.page.get_attribute("#budget-usd", "max") == budget["max_usd"]
    assert ana.api("GET", f"/api/llm/rooms/{room['id']}/budget/")["budget"]["monthly_usd"] == (
        "12.50"
    )

    # A member sees it beside the room and in a session's panel, without the form.
    ben.open_chat(room_path)
    ben.page.click(".side-toggle")
    ben.page.locator("#room-budget .budget-left", has_text=left).wait_for()
    assert ben.page.locator("#budget-form").count() == 0
    ben.open_chat(f"/ai/{session}/")
    ben.page.click(".side-toggle")
    ben.page.locator("#room-budget .budget-left", has_text=left).wait_for()
    shoot(ben, "session-budget-phone")
    assert ana.errors == []
    assert ben.errors == []
