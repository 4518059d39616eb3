"""A message after it is sent, in the browser (SPEC 9.4, 9.5): editing with ↑, the "edited"
mark, deleting with a confirmation, Markdown in room chat, the search page and a result that
opens its conversation at the message, and payloads in edited text and in search results
that stay text."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from testkit.proxy import TcpProxy

from .conftest import Person, room_of
from .test_chat import XSS_TEXT, assert_inert, message_texts, wait_for_text
from .test_layout import PHONE


def send(who: Person, text: str, shown: str | None = None) -> None:
    """Send from the composer; wait for the echo (showing `shown`, when Markdown changes it)."""
    who.page.fill("#message-input", text)
    who.page.press("#message-input", "Enter")
    who.page.locator("#messages li.msg.self", has_text=shown or text).first.wait_for()


def blast(who: Person, room_id: str, texts: list[str]) -> None:
    """Send many messages on a socket of the page's own, waiting for every echo."""
    who.page.evaluate(
        """async ([roomId, texts]) => {
          const ws = new WebSocket(`ws://${location.host}/ws/chat/${roomId}/`);
          await new Promise((ok, no) => {
            ws.addEventListener("open", ok, { once: true });
            ws.addEventListener("close", () => no(new Error("the socket closed")), { once: true });
          });
          const echoed = new Set();
          const done = new Promise((ok) => ws.addEventListener("message", (e) => {
            const f = JSON.parse(e.data);
            if (f.type === "error") console.log(JSON.stringify(f));
            if (f.type === "chat_message" && f.client_id) echoed.add(f.client_id);
            if (echoed.size === texts.length) ok();
          }));
          texts.forEach((message, n) =>
            ws.send(JSON.stringify({ type: "chat_message", message, client_id: `blast-${n}` })));
          const late = new Promise((_, no) => setTimeout(
            () => no(new Error(`${echoed.size} of ${texts.length} echoed`)), 20000));
          try {
            await Promise.race([done, late]);
          } finally {
            ws.close();
          }
        }""",
        [room_id, texts],
    )


def message(who: Person, text: str) -> Any:
    return who.page.locator("#messages li.msg", has_text=text).first


def test_edit_with_arrow_up_and_delete_with_a_confirmation(person: Callable[..., Person]) -> None:
    ana = person("ana")
    ben = person("ben", locale="en-US")
    room = room_of(ana, "release", ben)["id"]
    for who in (ana, ben):
        who.open_chat(f"/rooms/{room}/")
    send(ana, "kickoff at 10")
    send(ben, "teh plan is ready")
    wait_for_text(ana.page, "teh plan")

    # ↑ in the empty composer edits Ben's own last message, in place; Enter saves.
    ben.page.click("#message-input")
    ben.page.keyboard.press("ArrowUp")
    editor = ben.page.locator("#messages li.msg textarea.edit-input")
    assert editor.input_value() == "teh plan is ready"
    editor.fill("the plan is ready")
    editor.press("Enter")
    wait_for_text(ana.page, "the plan is ready")
    for who, edited in ((ana, "수정됨"), (ben, "edited")):
        mine = message(who, "the plan is ready")
        mine.locator(".edited").wait_for()
        assert mine.locator(".edited").inner_text() == edited
        assert "teh plan" not in who.page.inner_text("#messages")
    # Focus is back in the composer, which is empty: ↑ again edits the same message; Escape
    # leaves it as it was.
    assert ben.page.evaluate("() => document.activeElement.id") == "message-input"
    ben.page.keyboard.press("ArrowUp")
    ben.page.keyboard.press("Escape")
    assert ben.page.locator("textarea.edit-input").count() == 0

    # What each may do comes from the server: Ben edits and deletes his own, not Ana's; Ana,
    # the owner, deletes Ben's but cannot edit it.
    own, theirs = message(ben, "the plan"), message(ben, "kickoff")
    assert own.locator(".msg-actions button").all_inner_texts() == ["Edit", "Delete"]
    assert theirs.locator(".msg-actions button").count() == 0
    on_ana = message(ana, "the plan")
    assert on_ana.locator(".msg-actions button").all_inner_texts() == ["삭제"]

    # Delete asks once more, in place; then both pages keep the place as "deleted".
    on_ana.hover()
    delete = on_ana.locator(".msg-actions button")
    delete.click()
    assert delete.inner_text() == "모두에게서 삭제할까요?"
    delete.click()
    ben.page.locator("#messages li.msg.deleted").wait_for()
    ana.page.locator("#messages li.msg.deleted").wait_for()
    assert ben.page.inner_text("#messages li.msg.deleted .body") == "This message was deleted."
    for who in (ana, ben):
        assert "the plan" not in who.page.inner_text("#messages")
        assert who.page.locator("#messages li.msg").count() == 2
        assert who.errors == []
    # Nothing of Ben's is left to edit with ↑.
    ben.page.click("#message-input")
    ben.page.keyboard.press("ArrowUp")
    assert ben.page.locator("textarea.edit-input").count() == 0


def test_the_rooms_list_follows_edits_and_deletions(person: Callable[..., Person]) -> None:
    """An edit or a deletion changes what the others' rooms lists say (unread and mention
    badges, the last message) without a reload; the sender's own list shows her last message."""
    ana = person("ana")
    ben = person("ben")
    room = room_of(ana, "리뷰", ben)["id"]
    ben.goto("/rooms/")
    listed = ben.page.locator(f'a.room-link[data-room-id="{room}"]')
    listed.wait_for()
    ana.open_chat(f"/rooms/{room}/")
    mine = ana.page.locator(f'a.room-link[data-room-id="{room}"]')
    send(ana, "the build is green")
    send(ana, "Wrong room, sorry")
    listed.locator(".count", has_text="2").wait_for()
    assert "Wrong room" in listed.locator(".preview").inner_text()
    mine.locator(".preview", has_text="Wrong room").wait_for()

    # ana takes back her last message: one unread fewer, and the one before is the last again.
    gone = message(ana, "Wrong room")
    gone.hover()
    gone.locator(".msg-actions button", has_text="삭제").click()
    gone.locator(".msg-actions button.armed").click()
    listed.locator(".count", has_text="1").wait_for()
    listed.locator(".preview", has_text="the build is green").wait_for()
    mine.locator(".preview", has_text="the build is green").wait_for()

    # She edits it to name ben: his list now counts an unread mention, and shows the new text.
    kept = message(ana, "the build is green")
    kept.hover()
    kept.locator(".msg-actions button", has_text="수정").click()
    ana.page.locator("textarea.edit-input").fill(f"@{ben.username} the build is green")
    ana.page.locator("textarea.edit-input").press("Enter")
    listed.locator(".count.mention", has_text="@1").wait_for()
    expected = f"{ana.username}: @{ben.username} the build is green"
    assert listed.locator(".preview").inner_text() == expected
    assert ana.errors == ben.errors == []


def test_markdown_in_room_chat_is_rendered_safely(person: Callable[..., Person]) -> None:
    ana = person("ana")
    ben = person("ben")
    room = room_of(ana, "docs", ben)["id"]
    for who in (ana, ben):
        who.open_chat(f"/rooms/{room}/")
    text = (
        "**배포** 순서는 `make serve` 다음에\n\n"
        "- [문서](https://example.com/guide)\n- [이상한 링크](javascript:alert(1))\n\n"
        "```python\nprint('hi')\n```"
    )
    send(ana, "배포")
    ana.page.fill("#message-input", text)
    ana.page.press("#message-input", "Enter")
    said = ben.page.locator("#messages li.msg", has=ben.page.locator("strong"))
    said.wait_for()
    assert said.locator("strong").inner_text() == "배포"
    assert said.locator("code").first.inner_text() == "make serve"
    assert said.locator(".codeblock").count() == 1
    links = said.locator("a")
    assert links.count() == 1
    assert links.first.get_attribute("href") == "https://example.com/guide"
    assert "[이상한 링크](javascript:alert(1))" in said.inner_text()
    assert_inert(ben)


def test_payloads_in_edited_text_and_search_results_stay_text(
    person: Callable[..., Person],
) -> None:
    ana = person("ana")
    ben = person("ben")
    room = room_of(ana, "payloads", ben)["id"]
    for who in (ana, ben):
        who.open_chat(f"/rooms/{room}/")
    for n in range(len(XSS_TEXT)):
        send(ana, f"harmless {n}")
    for n, payload in enumerate(XSS_TEXT):
        target = message(ana, f"harmless {n}")
        target.hover()
        target.locator(".msg-actions button", has_text="수정").click()
        ana.page.locator("textarea.edit-input").fill(payload)
        ana.page.locator("textarea.edit-input").press("Enter")
    for who in (ana, ben):
        # Every edit shown on both pages (ana's last one too: her page applies it when its
        # answer comes) before the texts are compared.
        wait_for_text(who.page, "svg onload")
        who.page.locator("#messages li.msg .edited").nth(len(XSS_TEXT) - 1).wait_for()
        assert message_texts(who.page) == XSS_TEXT
        assert_inert(who)

    # The search page marks the match and shows the rest as text.
    ben.page.click("nav.mainnav a[href='/search/']")
    ben.page.wait_for_url(re.compile(r"/search/$"))
    ben.page.fill("#search-q", "onerror")
    ben.page.press("#search-q", "Enter")
    result = ben.page.locator("#results li.result")
    result.first.wait_for()
    assert result.count() == 1
    assert result.locator("mark").all_inner_texts() == ["onerror"]
    assert XSS_TEXT[0] in result.inner_text()
    ben.page.fill("#search-q", "script")
    ben.page.press("#search-q", "Enter")
    ben.page.locator("#results li.result mark").first.wait_for()
    expected = sum(text.count("script") for text in XSS_TEXT)
    assert ben.page.locator("#results li.result").count() == 3
    assert ben.page.locator("#results li.result mark").all_inner_texts() == ["script"] * expected
    for selector in ("img", "script", "svg", "iframe", "a[href^='javascript']"):
        assert ben.page.locator(f"#results {selector}").count() == 0, selector
    assert ben.dialogs == []
    assert ben.page.evaluate("() => window.__pwned") is None


def test_search_finds_korean_and_english_and_opens_the_conversation_at_the_message(
    person: Callable[..., Person],
) -> None:
    ana = person("ana")
    ben = person("ben")
    room = room_of(ana, "배포 준비", ben)["id"]
    ana.open_chat(f"/rooms/{room}/")
    send(ana, "배포 체크리스트를 금요일까지 확인해 주세요")
    send(ana, "The DEPLOY window is Friday 10:00")
    # Enough newer messages that the first one is not on the page a room opens with.
    blast(ana, room, [f"잡담 {n}" for n in range(28)])
    ben.goto("/search/")
    blast(ben, room, [f"chatter {n}" for n in range(30)])

    ben.page.wait_for_selector("#search-status:has-text('Enter')")
    ben.page.fill("#search-q", "체크리")
    ben.page.press("#search-q", "Enter")
    hit = ben.page.locator("#results li.result").first
    hit.wait_for()
    assert ben.page.locator("#results li.result").count() == 1
    assert hit.locator("mark").inner_text() == "체크리"
    assert "배포 준비" in hit.locator(".result-where").inner_text()
    assert "q=%EC%B2%B4%ED%81%AC%EB%A6%AC" in ben.page.url  # the query is in the URL

    ben.page.fill("#search-q", "deploy")
    ben.page.press("#search-q", "Enter")
    ben.page.locator("#results li.result mark", has_text="DEPLOY").wait_for()

    ben.page.fill("#search-q", "체크리스트")
    ben.page.press("#search-q", "Enter")
    ben.page.locator("#results li.result mark", has_text="체크리스트").wait_for()
    ben.page.locator("#results li.result a").first.click()
    ben.page.wait_for_url(re.compile(rf"/rooms/{room}/\?message=\d+$"))
    ben.page.wait_for_selector('#conn-status[data-state="open"]')
    target = ben.page.locator("#messages li.msg.flash", has_text="체크리스트")
    target.wait_for()
    assert target.is_visible()
    # Everything from there to the latest is on the page, and live messages still arrive.
    texts = message_texts(ben.page)
    assert texts[-1] == "chatter 29"
    assert "잡담 0" in texts
    send(ana, "새 메시지")
    wait_for_text(ben.page, "새 메시지")


def test_edits_and_deletions_made_while_away_show_after_the_reconnect(
    person: Callable[..., Person], proxy: TcpProxy
) -> None:
    ana = person("ana", base_url=proxy.base_url)
    ben = person("ben", locale="en-US")
    room = room_of(ben, "away", ana)["id"]
    path = f"/rooms/{room}/"
    ana.open_chat(path)
    ben.open_chat(path)
    for text in ("stays", "will change", "will go"):
        send(ben, text)
    wait_for_text(ana.page, "will go")
    fetched: list[str] = []
    ana.page.on("request", lambda r: fetched.append(r.url) if "/messages/" in r.url else None)

    proxy.cut()
    ana.page.wait_for_selector('#conn-status[data-state="waiting"]')
    for text, action in (("will change", "Edit"), ("will go", "Delete")):
        mine = message(ben, text)
        mine.hover()
        button = mine.locator(".msg-actions button", has_text=re.compile(action))
        if action == "Edit":
            button.click()
            ben.page.locator("textarea.edit-input").fill("changed")
            ben.page.locator("textarea.edit-input").press("Enter")
        else:
            button.click()
            button.click()
    message(ben, "changed").locator(".edited").wait_for()
    ben.page.locator("#messages li.msg.deleted").wait_for()
    assert "will change" in ana.page.inner_text("#messages")

    proxy.restore()
    ana.page.wait_for_selector('#conn-status[data-state="open"]', timeout=30_000)
    message(ana, "changed").locator(".edited").wait_for()
    ana.page.locator("#messages li.msg.deleted").wait_for()
    assert message_texts(ana.page) == ["stays", "changed", "삭제된 메시지입니다."]
    # One request brought both: the catch-up of messages carried the changes.
    assert len([u for u in fetched if "changed_after=" in u]) == 1, fetched


def test_the_new_screens_fit_phones_and_wide_screens(
    person: Callable[..., Person], shoot: Callable[[Person, str], None]
) -> None:
    """Room chat with an edit in progress, an edited and a deleted message and Markdown, and
    the search page, on a wide screen and a phone; with UPDATE_SCREENSHOTS=1 the shots go to
    docs/ for the README."""

    jiwoo = person(username="jiwoo")
    sam = person(username="sam", locale="en-US")
    room = room_of(jiwoo, "백엔드 팀", sam)["id"]
    path = f"/rooms/{room}/"
    jiwoo.open_chat(path)
    sam.open_chat(path)
    send(jiwoo, "금요일 **배포** 전에 `make test` 한 번 더 돌려 주세요.", "한 번 더")
    send(sam, "Deploy checklist:\n\n- migrations\n- `collectstatic`\n- smoke test", "smoke")
    send(jiwoo, "배포 창은 금요일 10시로 잡을게요")
    send(sam, "Wrong room, sorry")
    send(jiwoo, "회의록은 위키에 올려 두었어요")
    # jiwoo fixes a typo; sam takes one back; jiwoo starts editing her last message.
    edited = message(jiwoo, "배포 창은")
    edited.hover()
    edited.locator(".msg-actions button", has_text="수정").click()
    jiwoo.page.locator("textarea.edit-input").fill("배포 창은 금요일 오전 10시로 잡을게요")
    jiwoo.page.locator("textarea.edit-input").press("Enter")
    gone = message(sam, "Wrong room")
    gone.hover()
    gone.locator(".msg-actions button", has_text="Delete").click()
    gone.locator(".msg-actions button.armed").click()
    jiwoo.page.locator("#messages li.msg.deleted").wait_for()
    message(jiwoo, "오전 10시").locator(".edited").wait_for()
    jiwoo.page.click("#message-input")
    jiwoo.page.keyboard.press("ArrowUp")
    jiwoo.page.locator("textarea.edit-input").wait_for()
    shoot(jiwoo, "room-edit")

    jiwoo.goto("/search/?q=배포")
    jiwoo.page.locator("#results li.result mark").first.wait_for()
    shoot(jiwoo, "search")

    phone = person(signed_up=False, username=jiwoo.username, **PHONE)
    phone.context.add_cookies(jiwoo.context.cookies())
    phone.goto("/search/?q=배포")
    phone.page.locator("#results li.result mark").first.wait_for()
    shoot(phone, "search-phone")
    phone.open_chat(path)
    phone.page.locator("#messages li.msg.deleted").wait_for()
    phone.page.click("#message-input")
    phone.page.keyboard.press("ArrowUp")
    phone.page.locator("textarea.edit-input").wait_for()
    shoot(phone, "room-edit-phone")
