"""Room chat in the browser: sign-up and rooms through the pages, two people talking live,
inert payloads, and a dropped socket that comes back without losing or repeating anything."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from testkit.proxy import TcpProxy

from .conftest import Person
from .live import PASSWORD

XSS_TEXT = [
    '<img src=x onerror="window.__pwned=1;alert(1)">',
    "<script>window.__pwned=1;alert(2)</script>",
    "javascript:alert(3) [click](javascript:alert(4))",
    '<a href="javascript:alert(5)">x</a><svg onload=alert(6)>',
]


def message_texts(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#messages li.msg .body").all_inner_texts()]


def wait_for_text(page: Any, text: str) -> None:
    page.locator("#messages li.msg .body", has_text=text).first.wait_for()


def assert_inert(who: Person) -> None:
    page = who.page
    assert who.dialogs == []
    assert page.evaluate("() => window.__pwned") is None
    for selector in ("img", "script", "svg", "iframe", "a[href^='javascript']"):
        assert page.locator(f"#messages {selector}").count() == 0, selector


def test_two_people_chat_both_ways(person: Callable[..., Person]) -> None:
    ana = person("ana", signed_up=False)
    ben = person("ben", locale="en-US", signed_up=False)

    # Ana signs up through the pages and makes a room.
    ana.goto("/")
    ana.page.click("#other-auth")
    ana.page.fill("#username", ana.username)
    ana.page.fill("#password", PASSWORD)
    ana.page.fill("#password2", PASSWORD)
    ana.page.click("#auth-form button[type=submit]")
    # The whole URL: the sign-up page's own (`/signup/?next=/rooms/`) ends the same way.
    ana.page.wait_for_url(f"{ana.base_url}/rooms/")
    assert ana.page.locator("html").get_attribute("lang") == "ko"
    ana.page.fill("#room-name", "설계 회의")
    ana.page.click("#create-room button[type=submit]")
    ana.page.wait_for_url(re.compile(r"/rooms/[0-9a-f-]{36}/$"))
    ana.page.wait_for_selector('#conn-status[data-state="open"]')
    assert ana.page.inner_text("#conn-status") == "연결됨"

    # Ben, whose browser asks for English, signs up; Ana adds him as a member.
    ben.goto("/signup/")
    assert ben.page.locator("html").get_attribute("lang") == "en"
    assert ben.page.inner_text("h1") == "Create an account"
    ben.page.fill("#username", ben.username)
    ben.page.fill("#password", PASSWORD)
    ben.page.fill("#password2", PASSWORD)
    ben.page.keyboard.press("Enter")
    ben.page.wait_for_url(re.compile(r"/rooms/$"))
    ben.page.wait_for_selector("#room-list .empty")

    ana.page.fill("#person-name", ben.username)
    ana.page.click("#add-person button[type=submit]")
    ana.page.locator("#people .name", has_text=ben.username).wait_for()

    ben.page.reload()
    ben.page.click("#room-list a.room-link")
    ben.page.wait_for_selector('#conn-status[data-state="open"]')
    assert ben.page.inner_text("#conn-status") == "Connected"
    assert ben.page.inner_text("#room-title") == "설계 회의"

    # Enter sends; the message is pending until the server's echo, then shown once to both.
    ana.page.fill("#message-input", "벤, 안녕하세요")
    ana.page.press("#message-input", "Enter")
    wait_for_text(ben.page, "벤, 안녕하세요")
    ana.page.locator("#messages li.msg.self", has_text="벤, 안녕하세요").wait_for()
    assert ana.page.locator("#tail li").count() == 0
    assert ana.page.input_value("#message-input") == ""

    # Shift+Enter is a new line, not a send.
    ben.page.click("#message-input")
    ben.page.keyboard.type("first line")
    ben.page.keyboard.press("Shift+Enter")
    ben.page.keyboard.type("second line")
    assert ben.page.locator("#messages li.msg").count() == 1
    ben.page.keyboard.press("Enter")
    wait_for_text(ana.page, "second line")

    for who in (ana, ben):
        texts = message_texts(who.page)
        assert texts == ["벤, 안녕하세요", "first line\nsecond line"], texts
        assert who.page.locator("#messages li.msg[data-message-id]").count() == 2
        assert who.errors == []
    other = ana.page.locator("#messages li.msg", has_text="second line")
    assert other.locator(".author").inner_text() == ben.username
    assert "self" not in (other.get_attribute("class") or "")

    # The owner removes Ben (asking once more, in place): his page says so and stops sending.
    remove = ana.page.locator("#people .person", has_text=ben.username).locator("button")
    remove.click()
    assert remove.inner_text() == f"{ben.username} 님을 내보낼까요?"
    remove.click()
    ana.page.locator("#people .person", has_text=ben.username).wait_for(state="detached")
    ben.page.locator('#notices .notice[data-key="final"]').wait_for()
    assert "no longer a member" in ben.page.inner_text("#notices")
    assert ben.page.is_disabled("#message-input")
    assert ben.page.get_attribute("#conn-status", "data-state") == "closed"


def test_payloads_from_people_stay_text(person: Callable[..., Person]) -> None:
    ana = person("ana")
    ben = person("ben")
    room = ana.api("POST", "/api/chat/rooms/", {"name": "<b>bold</b> room"})["room"]
    ana.api("POST", f"/api/chat/rooms/{room['id']}/participants/", {"username": ben.username})
    for who in (ana, ben):
        who.open_chat(f"/rooms/{room['id']}/")
    assert ben.page.inner_text("#room-title") == "<b>bold</b> room"

    for payload in XSS_TEXT:
        ana.page.fill("#message-input", payload)
        ana.page.press("#message-input", "Enter")
    wait_for_text(ben.page, "svg onload")
    time.sleep(0.3)
    for who in (ana, ben):
        assert message_texts(who.page) == XSS_TEXT
        assert_inert(who)
        # A plain http(s) URL in a message is a link; nothing else is.
        assert who.page.locator("#messages a").count() == 0


def test_dropped_socket_reconnects_and_recovers_missed_messages(
    person: Callable[..., Person], proxy: TcpProxy
) -> None:
    ana = person("ana", base_url=proxy.base_url)
    ben = person("ben")
    room = ana.api("POST", "/api/chat/rooms/", {"name": "flaky network"})["room"]
    ana.api("POST", f"/api/chat/rooms/{room['id']}/participants/", {"username": ben.username})
    path = f"/rooms/{room['id']}/"
    ana.open_chat(path)
    ben.open_chat(path)
    earlier = [f"earlier {n}" for n in range(1, 23)]
    for text in [*earlier, "before the drop"]:
        ben.page.fill("#message-input", text)
        ben.page.press("#message-input", "Enter")
        wait_for_text(ana.page, text)

    fetched: list[str] = []
    ana.page.on("request", lambda r: fetched.append(r.url) if "after=" in r.url else None)

    proxy.cut()
    ana.page.wait_for_selector('#conn-status[data-state="waiting"]')
    missed = [f"missed {n}" for n in range(1, 4)]
    for text in missed:
        ben.page.fill("#message-input", text)
        ben.page.press("#message-input", "Enter")
        wait_for_text(ben.page, text)
    # Ana writes while offline: the message waits, pending, and goes once she is back.
    ana.page.fill("#message-input", "written while offline")
    ana.page.press("#message-input", "Enter")
    ana.page.locator("#tail li.msg.pending", has_text="written while offline").wait_for()
    assert ana.page.locator("#messages li.msg", has_text="missed").count() == 0

    proxy.restore()
    ana.page.wait_for_selector('#conn-status[data-state="open"]', timeout=30_000)
    wait_for_text(ana.page, "missed 3")
    wait_for_text(ana.page, "written while offline")
    wait_for_text(ben.page, "written while offline")
    time.sleep(0.5)

    expected = [*earlier, "before the drop", *missed, "written while offline"]
    assert message_texts(ana.page) == expected
    assert message_texts(ben.page) == expected
    assert ana.page.locator("#tail li").count() == 0
    # The catch-up asks for what came after the last message shown, no window before it
    # (ids commit in order: SPEC 9.4), with the edits and deletions since in the same request.
    last_seen = ana.page.locator("#messages li.msg", has_text="before the drop").first
    cursor = last_seen.get_attribute("data-message-id")
    asked = [int(re.search(r"[?&]after=(\d+)", u).group(1)) for u in fetched]  # type: ignore[union-attr]
    assert min(asked) == int(cursor or 0), (cursor, fetched)
    assert all("changed_after=" in u for u in fetched), fetched
    assert proxy.connections >= 2


def test_the_browser_enforces_the_pages_policy(person: Callable[..., Person]) -> None:
    ana = person("ana")
    ana.goto("/rooms/")
    ana.page.wait_for_selector("#room-list .empty")
    assert ana.errors == []
    tried = ana.page.evaluate(
        """() => {
          const outcome = {};
          try {
            document.body.insertAdjacentHTML("beforeend", "<b id=x>x</b>");
            outcome.html = "ran";
          } catch (e) { outcome.html = e.name; }
          try {
            const s = document.createElement("script");
            s.textContent = "window.__inline = 1";
            document.body.append(s);
            outcome.script = "appended";
          } catch (e) { outcome.script = e.name; }
          return outcome;
        }"""
    )
    assert tried == {"html": "TypeError", "script": "TypeError"}
    assert ana.page.evaluate("() => window.__inline") is None
    assert ana.page.locator("#x").count() == 0
    assert any("Trusted" in error for error in ana.errors)
