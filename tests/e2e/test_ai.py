"""AI sessions in the browser: a reply streaming into two pages, Stop, inert model output, the
rate-limit message with its countdown, and the usage charts."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from testkit.proxy import TcpProxy
from testkit.upstream import Behavior, FakeUpstream

from .conftest import Person, room_of
from .live import LLM_USER_RATE, PASSWORD, STAFF_USERNAME

STREAMED = (
    "Streaming works like this:\n\n"
    "1. the **server** asks the model\n"
    "2. tokens arrive as `deltas`\n\n"
    "```python\n"
    "def greet(name):\n"
    "    return f'hello {name}'  # a comment\n"
    "```\n\n"
    "See [the docs](https://example.com/docs) for more."
)

MODEL_XSS = (
    'Here: <img src=x onerror="window.__pwned=1;alert(1)"> and <script>alert(2)</script>\n\n'
    "[click me](javascript:alert(3)) [data](data:text/html,<script>alert(4)</script>) "
    "![pic](javascript:alert(5)) [fine](https://example.com/ok)\n\n"
    "```html\n<script>alert(6)</script>\n```\n"
    '<a href="javascript:alert(7)">raw</a> <svg onload=alert(8)>'
)


INJECTED = ("img", "script", "svg", "iframe", "a[href^='javascript']", "a[href^='data']")
LABELS = "els => els.map(e => e.dataset.label)"
VALUES = "els => els.map(e => Number(e.dataset.value))"


def room_with(owner: Person, *others: Person) -> dict[str, Any]:
    return room_of(owner, "AI room", *others)


def start_session(owner: Person, room: dict[str, Any]) -> str:
    """Start a session the way a person does: the button on the room page."""
    owner.open_chat(f"/rooms/{room['id']}/")
    owner.page.click("#start-session")
    owner.page.wait_for_url(re.compile(r"/ai/[0-9a-f-]{36}/$"))
    owner.page.wait_for_selector('#conn-status[data-state="open"]')
    return owner.page.url.rstrip("/").rsplit("/", 1)[-1]


def send(who: Person, text: str) -> None:
    who.page.fill("#message-input", text)
    who.page.press("#message-input", "Enter")


def ai_reply(page: Any) -> Any:
    return page.locator("#messages li.msg.ai").last


def test_reply_streams_into_both_pages(
    person: Callable[..., Person], upstream: FakeUpstream
) -> None:
    ana = person("ana")
    ben = person("ben", locale="en-US")
    ana.context.grant_permissions(["clipboard-read", "clipboard-write"])
    room = room_with(ana, ben)
    session_id = start_session(ana, room)

    # Ben finds the session in the room's list and opens it.
    ben.open_chat(f"/rooms/{room['id']}/")
    ben.page.click(f'#sessions li[data-session-id="{session_id}"] a')
    ben.page.wait_for_url(re.compile(rf"/ai/{session_id}/$"))
    ben.page.wait_for_selector('#conn-status[data-state="open"]')

    upstream.on("explain-streaming", Behavior(text=STREAMED, by_words=True, delay=0.12))
    send(ana, "please explain-streaming")
    for who in (ana, ben):
        who.page.locator("#messages li.msg", has_text="explain-streaming").wait_for()
        who.page.wait_for_selector("#stop-button:not([hidden])")

    # Both pages show the reply growing while it is written, not only at the end.
    streaming = [who.page.locator("#tail li.msg.ai.streaming") for who in (ana, ben)]
    for bubble in streaming:
        bubble.locator(".body", has_text="server").wait_for()
    early = [len(b.inner_text()) for b in streaming]
    time.sleep(0.6)
    later = [len(b.inner_text()) for b in streaming if b.count()]
    assert len(later) == 2, "the reply ended too soon to be seen growing"
    assert all(b > a for a, b in zip(early, later, strict=True)), (early, later)
    assert upstream.request_for("explain-streaming").completed is False

    for who in (ana, ben):
        reply = ai_reply(who.page)
        reply.locator(".body a", has_text="the docs").wait_for()
        assert who.page.locator("#tail li").count() == 0
        assert reply.locator(".author").inner_text() == "AI_Assistant"
        assert reply.locator("strong").inner_text() == "server"
        assert reply.locator("ol li").count() == 2
        assert reply.locator(".codeblock .tok-keyword", has_text="def").count() == 1
        assert reply.locator(".codeblock .tok-comment").inner_text() == "# a comment"
        assert reply.locator("a").get_attribute("href") == "https://example.com/docs"
        assert reply.locator("a").get_attribute("rel") == "noopener noreferrer nofollow ugc"
        who.page.wait_for_selector("#stop-button", state="hidden")
        assert who.errors == []
    assert ai_reply(ben.page).locator(".codebar .copy").inner_text() == "Copy"

    copy = ai_reply(ana.page).locator(".codebar .copy")
    assert copy.inner_text() == "복사"
    copy.click()
    ai_reply(ana.page).locator(".codebar .copy.done", has_text="복사됨").wait_for()
    copied = ana.page.evaluate("() => navigator.clipboard.readText()")
    assert copied == "def greet(name):\n    return f'hello {name}'  # a comment"


def test_stop_ends_the_reply_and_the_provider_call(
    person: Callable[..., Person], upstream: FakeUpstream
) -> None:
    ana = person("ana")
    start_session(ana, room_with(ana))
    words = [f"word{n} " for n in range(200)]
    upstream.on("long-story", Behavior(text="".join(words), by_words=True, delay=0.05))
    send(ana, "tell me a long-story")
    bubble = ana.page.locator("#tail li.msg.ai.streaming")
    bubble.locator(".body", has_text="word5").wait_for()

    ana.page.click("#stop-button")
    reply = ai_reply(ana.page)
    reply.locator(".finish").wait_for(timeout=5000)
    assert reply.locator(".finish").inner_text() == "끝나기 전에 중지되었습니다."
    text = reply.locator(".body").inner_text()
    assert text.startswith("word0 word1")
    assert "word199" not in text
    ana.page.wait_for_selector("#stop-button", state="hidden")

    call = upstream.request_for("long-story")
    assert call.finished.wait(5), "the provider call went on after Stop"
    assert call.hung_up
    assert not call.completed
    assert call.chunks_sent < len(words)

    # The stopped reply is stored as it was: a reload shows the same text and note.
    ana.page.reload()
    ana.page.wait_for_selector('#conn-status[data-state="open"]')
    stored = ai_reply(ana.page)
    assert stored.locator(".body").inner_text() == text
    assert stored.locator(".finish").count() == 1


def test_a_reply_being_written_comes_back_after_a_dropped_socket(
    person: Callable[..., Person], upstream: FakeUpstream, proxy: TcpProxy
) -> None:
    ana = person("ana", base_url=proxy.base_url)
    start_session(ana, room_with(ana))
    words = [f"word{n} " for n in range(300)]
    upstream.on("resume-me", Behavior(text="".join(words), by_words=True, delay=0.05))
    send(ana, "resume-me please")
    bubble = ana.page.locator("#tail li.msg.ai.streaming")
    bubble.locator(".body", has_text="word5").wait_for()

    proxy.cut()
    ana.page.wait_for_selector('#conn-status[data-state="waiting"]')
    proxy.restore()
    ana.page.wait_for_selector('#conn-status[data-state="open"]', timeout=30_000)
    # The page that came back gets the reply so far in one piece, then the rest as it comes.
    bubble.locator(".body", has_text="word0 word1 word2").wait_for()
    shown = int(re.findall(r"word(\d+)", bubble.locator(".body").inner_text())[-1])
    bubble.locator(".body", has_text=f"word{shown + 3}").wait_for()
    assert ana.page.locator("#tail li.msg.ai").count() == 1

    ana.page.click("#stop-button")
    reply = ai_reply(ana.page)
    reply.locator(".finish").wait_for()
    ana.page.wait_for_selector("#stop-button", state="hidden")
    text = reply.locator(".body").inner_text().split()
    assert text == [f"word{n}" for n in range(len(text))], "words lost or repeated"
    assert len(text) < len(words)
    assert ana.page.locator("#tail li").count() == 0
    assert ana.page.locator("#messages li.msg.ai").count() == 1
    assert proxy.connections >= 2
    assert ana.errors == []


def test_payloads_from_people_and_the_model_stay_inert(
    person: Callable[..., Person], upstream: FakeUpstream
) -> None:
    ana = person("ana")
    ben = person("ben")
    room = room_with(ana, ben)
    session_id = start_session(ana, room)
    ben.open_chat(f"/ai/{session_id}/")

    upstream.on("model-xss", Behavior(text=MODEL_XSS, by_words=True, delay=0.01))
    send(ana, '<img src=x onerror="window.__pwned=1"> model-xss <script>alert(9)</script>')
    for who in (ana, ben):
        reply = ai_reply(who.page)
        reply.locator("a", has_text="fine").wait_for()
        body = reply.locator(".body").inner_text()
        assert '<img src=x onerror="window.__pwned=1;alert(1)">' in body
        assert "[click me](javascript:alert(3))" in body
        assert '<a href="javascript:alert(7)">raw</a>' in body
        assert reply.locator("a").count() == 1
        assert reply.locator("a").get_attribute("href") == "https://example.com/ok"
        assert reply.locator("code.lang-html").inner_text() == "<script>alert(6)</script>"
        mine = who.page.locator("#messages li.msg:not(.ai)", has_text="model-xss").locator(".body")
        assert mine.inner_text().startswith('<img src=x onerror="window.__pwned=1">')
        assert who.dialogs == []
        assert who.page.evaluate("() => window.__pwned") is None
        for selector in INJECTED:
            assert who.page.locator(f"#messages {selector}").count() == 0, selector
        assert who.errors == []


def test_a_provider_failure_says_what_to_do_and_the_session_goes_on(
    person: Callable[..., Person], upstream: FakeUpstream
) -> None:
    ana = person("ana")
    start_session(ana, room_with(ana))
    upstream.on("provider-down", Behavior(status=500))
    send(ana, "provider-down now?")
    notice = ana.page.locator('#notices .notice[data-key="upstream_unavailable"]')
    notice.wait_for()
    assert notice.inner_text().startswith("지금은 AI 제공자에 연결할 수 없습니다. 몇 분 뒤 다시")
    ana.page.wait_for_selector("#thinking", state="hidden")
    ana.page.wait_for_selector("#stop-button", state="hidden")
    assert ana.page.locator("#messages li.msg.self", has_text="provider-down").count() == 1
    assert ana.page.locator("#messages li.msg.ai").count() == 0

    send(ana, "and now?")
    ai_reply(ana.page).locator(".body", has_text="Echo: and now?").wait_for()


def test_rate_limit_says_when_to_send_again(
    person: Callable[..., Person], upstream: FakeUpstream
) -> None:
    ana = person("ana")
    start_session(ana, room_with(ana))
    allowed = int(LLM_USER_RATE.split("/")[0])
    for n in range(allowed):
        send(ana, f"quick {n}")
        ai_reply(ana.page).locator(".body", has_text=f"quick {n}").wait_for()
    send(ana, "one too many")

    notice = ana.page.locator('#notices .notice[data-key="rate"]')
    notice.wait_for()
    assert "메시지를 너무 빨리 보내고 있습니다" in notice.inner_text()
    first = int(re.search(r"(\d+)초 뒤에", notice.inner_text()).group(1))  # type: ignore[union-attr]
    assert 1 <= first <= 60
    assert ana.page.is_disabled("#send-button")
    refused = ana.page.locator("#tail li.msg.failed", has_text="one too many")
    refused.locator(".state", has_text="보내지 못했습니다").wait_for()
    assert refused.locator("button", has_text="다시 보내기").count() == 1
    time.sleep(1.3)
    later = int(re.search(r"(\d+)초 뒤에", notice.inner_text()).group(1))  # type: ignore[union-attr]
    assert later < first
    assert ana.page.locator("#messages li.msg", has_text="one too many").count() == 0


def test_ending_a_session_is_offered_to_who_may_end_it(person: Callable[..., Person]) -> None:
    ana = person("ana")  # owns the room
    ben = person("ben")  # starts the session
    cai = person("cai")  # only a member
    room = room_with(ana, ben, cai)
    start = {"room_uuid": room["id"]}
    session_id = ben.api("POST", "/api/llm/start_session/", start)["session_id"]
    other_id = ben.api("POST", "/api/llm/start_session/", start)["session_id"]

    # The room's list offers End to the owner, and nothing to a plain member.
    for who, buttons in ((ana, 1), (cai, 0)):
        who.open_chat(f"/rooms/{room['id']}/")
        item = who.page.locator(f'#sessions li[data-session-id="{other_id}"]')
        item.wait_for()
        assert item.locator("button").count() == buttons, who.username
    end = ana.page.locator(f'#sessions li[data-session-id="{other_id}"] button')
    end.click()
    assert end.inner_text() == "종료할까요?"
    end.click()
    ana.page.locator(f'#sessions li.ended[data-session-id="{other_id}"]').wait_for()
    assert ana.page.locator(f'#sessions li[data-session-id="{other_id}"] button').count() == 0

    # On the session page its starter sees "End this session"; a plain member does not.
    for who in (ben, cai):
        who.open_chat(f"/ai/{session_id}/")
        who.page.locator("#session-facts dt").first.wait_for()
    assert ben.page.is_visible("#end-session")
    assert cai.page.is_hidden("#end-session")
    ben.page.click("#end-session")
    assert ben.page.inner_text("#end-session") == "한 번 더 누르면 모두에게 세션이 종료됩니다"
    ben.page.click("#end-session")

    # Both pages learn that it ended: the composer locks and says why.
    for who in (ben, cai):
        who.page.locator('#notices .notice[data-key="ended"]').wait_for()
        who.page.wait_for_selector("#message-input:disabled")
        placeholder = who.page.get_attribute("#message-input", "placeholder")
        assert placeholder == "이 세션은 종료되었습니다."
        assert who.errors == []
    ben.page.wait_for_selector("#end-session", state="hidden")
    assert ben.page.inner_text("#session-state") == "종료됨"


def test_usage_page_draws_the_charts(person: Callable[..., Person], upstream: FakeUpstream) -> None:
    # The staff account signs in through the sign-in page.
    staff = person(signed_up=False, username=STAFF_USERNAME)
    staff.goto("/usage/")
    staff.page.wait_for_url(re.compile(r"/login/\?next=/usage/$"))
    staff.page.fill("#username", STAFF_USERNAME)
    staff.page.fill("#password", PASSWORD)
    staff.page.click("#auth-form button[type=submit]")
    staff.page.wait_for_url(re.compile(r"/usage/$"))

    ana = person("ana")
    start_session(ana, room_with(ana))
    upstream.on("count-me", Behavior(text="one two three", by_words=True, prompt_tokens=20))
    send(ana, "count-me please")
    ai_reply(ana.page).locator(".body", has_text="three").wait_for()

    ana.goto("/usage/")
    ana.page.wait_for_selector("#chart-tokens-day svg rect.bar")
    stats = ana.page.locator("#totals .stat-value").all_inner_texts()
    assert stats[:2] == ["1", "23"], stats
    bars = ana.page.locator("#chart-tokens-day svg rect.bar")
    assert sorted(bars.evaluate_all(VALUES)) == [3, 20]
    assert all(bars.nth(i).bounding_box()["height"] > 0 for i in range(bars.count()))
    assert ana.page.locator("#chart-cost-day svg rect.bar").count() == 1
    assert ana.page.locator("#chart-model svg rect.bar").evaluate_all(LABELS) == ["gpt-4o-mini"]
    assert ana.page.locator("#chart-user").count() == 0

    staff.page.reload()
    staff.page.wait_for_selector("#chart-user svg rect.bar")
    assert ana.username in staff.page.locator("#chart-user svg rect.bar").evaluate_all(LABELS)
    assert staff.page.locator("#chart-room svg rect.bar").count() >= 1
    assert staff.page.inner_text("h1") == "AI 사용량: 전체 사용자"

    staff.page.click("#sign-out")
    staff.page.wait_for_url(re.compile(r"/login/$"))
    staff.goto("/rooms/")
    staff.page.wait_for_url(re.compile(r"/login/\?next=/rooms/$"))
