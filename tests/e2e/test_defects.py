"""The defects a new user found in the web client (issue 14), each shown the way they met it.
Every test here failed against the code before its fix."""

from __future__ import annotations

from collections.abc import Callable

from testkit.upstream import Behavior, FakeUpstream

from .conftest import Person, unique
from .live import LLM_USER_RATE, PASSWORD
from .test_ai import ai_reply, room_with, send

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def open_session(who: Person) -> str:
    """A session in a room of `who`'s own, open in their page (on a phone the button that
    starts one sits behind the side panel's toggle)."""
    room = room_with(who)
    session_id = who.api("POST", "/api/llm/start_session/", {"room_uuid": room["id"]})["session_id"]
    who.open_chat(f"/ai/{session_id}/")
    return str(session_id)


def test_on_a_phone_the_top_bar_keeps_its_height_on_a_long_page(
    person: Callable[..., Person], upstream: FakeUpstream
) -> None:
    ana = person("ana", **PHONE)
    open_session(ana)
    upstream.on("usage please", Behavior(pieces=("a ", "few ", "tokens"), prompt_tokens=30))
    for n in range(2):
        send(ana, f"usage please {n}")
        ana.page.locator("#messages li.msg.ai .body", has_text="tokens").nth(n).wait_for()
    ana.goto("/usage/")
    ana.page.wait_for_selector("#chart-tokens-day svg rect.bar")
    sizes = ana.page.evaluate(
        """() => {
          const bar = document.querySelector(".topbar");
          const main = document.querySelector("main");
          return {
            page: document.documentElement.scrollHeight,
            window: window.innerHeight,
            shown: bar.getBoundingClientRect().height,
            needed: bar.scrollHeight,
            mainTop: main.getBoundingClientRect().top,
            barTop: bar.getBoundingClientRect().top,
          };
        }"""
    )
    assert sizes["page"] > sizes["window"], sizes  # the page is taller than the phone
    assert sizes["shown"] >= sizes["needed"], sizes
    assert sizes["mainTop"] >= sizes["barTop"] + sizes["needed"] - 1, sizes


def test_offline_is_said_and_a_message_not_echoed_in_10_s_is_not_sent(
    person: Callable[..., Person],
) -> None:
    ana = person("ana")
    ben = person("ben")
    room = room_with(ana, ben)
    ana.open_chat(f"/rooms/{room['id']}/")
    ben.open_chat(f"/rooms/{room['id']}/")

    ana.context.set_offline(True)
    ana.page.wait_for_selector('#conn-status[data-state="offline"]', timeout=5_000)
    assert ana.page.inner_text("#conn-status") == "오프라인: 네트워크를 기다리는 중…"
    send(ana, "written with no network")
    pending = ana.page.locator("#tail li.msg", has_text="written with no network")
    pending.locator(".state", has_text="보내는 중").wait_for()
    # Not echoed within 10 s: it says so, and offers to send it again.
    pending.locator(".state", has_text="보내지 못했습니다").wait_for(timeout=14_000)
    again = pending.locator("button", has_text="다시 보내기")
    assert again.is_visible()

    ana.context.set_offline(False)
    ana.page.wait_for_selector('#conn-status[data-state="open"]', timeout=20_000)
    again.click()
    ben.page.locator("#messages li.msg .body", has_text="written with no network").wait_for()
    ana.page.locator("#messages li.msg.self", has_text="written with no network").wait_for()
    assert ana.page.locator("#tail li").count() == 0
    assert ben.page.locator("#messages li.msg", has_text="written with no network").count() == 1


def test_sign_up_errors_are_sentences_in_the_pages_language(
    person: Callable[..., Person],
) -> None:
    taken = person("taken")
    visitor = person(signed_up=False)
    visitor.goto("/signup/")
    assert visitor.page.locator("html").get_attribute("lang") == "ko"

    def sign_up(username: str, password: str) -> str:
        visitor.page.fill("#username", username)
        visitor.page.fill("#password", password)
        visitor.page.fill("#password2", password)
        visitor.page.click("#auth-form button[type=submit]")
        error = visitor.page.locator("#form-error")
        error.wait_for()
        text = error.inner_text()
        visitor.page.evaluate("() => { document.getElementById('form-error').hidden = true; }")
        return text

    said = sign_up(taken.username.upper(), PASSWORD)
    assert said == "이미 사용 중인 아이디입니다. 다른 아이디를 고르세요.", said
    said = sign_up(unique("new"), "12345678")
    assert "username" not in said
    assert "password" not in said
    assert "너무 흔한 비밀번호입니다" in said, said
    assert "숫자로만" in said, said


def test_a_refused_message_is_brought_into_view(
    person: Callable[..., Person], upstream: FakeUpstream
) -> None:
    ana = person("ana", **PHONE)
    open_session(ana)
    upstream.on("long", Behavior(pieces=("a long answer that fills the phone's screen. ",) * 12))
    allowed = int(LLM_USER_RATE.split("/")[0])
    for n in range(allowed):
        send(ana, f"long question {n}")
        ana.page.locator("#messages li.msg.ai .body", has_text="fills").nth(n).wait_for()
    send(ana, "one too many")
    refused = ana.page.locator("#tail li.msg.failed", has_text="one too many")
    refused.locator(".state", has_text="보내지 못했습니다").wait_for()
    box = refused.bounding_box()
    scroller = ana.page.locator("#scroller").bounding_box()
    assert box is not None
    assert scroller is not None
    # All of it, buttons included, inside the visible part of the conversation.
    assert box["y"] >= scroller["y"] - 1, (box, scroller)
    assert box["y"] + box["height"] <= scroller["y"] + scroller["height"] + 1, (box, scroller)


def test_a_member_removed_from_the_room_loses_end_and_active(
    person: Callable[..., Person],
) -> None:
    ana = person("ana")
    ben = person("ben")
    room = room_with(ana, ben)
    # ben starts the session, so he may end it while he is a member.
    session_id = ben.api("POST", "/api/llm/start_session/", {"room_uuid": room["id"]})["session_id"]
    ben.open_chat(f"/ai/{session_id}/")
    ben.page.wait_for_selector("#end-session:visible")
    assert ben.page.inner_text("#session-state") == "진행 중"

    ana.api("DELETE", f"/api/chat/rooms/{room['id']}/participants/{ben.username}/")
    ben.page.locator('#notices .notice[data-key="final"]').wait_for()
    assert "더 이상" in ben.page.inner_text("#notices")
    assert ben.page.is_hidden("#end-session")
    assert ben.page.is_hidden("#session-state")
    assert ben.page.is_disabled("#message-input")


def test_the_assistant_joins_once_without_covering_the_conversation(
    person: Callable[..., Person], upstream: FakeUpstream
) -> None:
    ana = person("ana", **PHONE)
    open_session(ana)
    note = ana.page.locator("#joined-note")
    note.wait_for()
    assert note.inner_text() == "AI_Assistant가 대화에 참여했습니다."
    send(ana, "hello there")
    ai_reply(ana.page).locator(".body", has_text="hello there").wait_for()
    # ai_joined came first on the socket, so it has been handled by now: nothing was laid over
    # the conversation.
    assert ana.page.locator("#notices .notice").count() == 0

    # Once per session: not again when the page is loaded again.
    ana.page.reload()
    ana.page.wait_for_selector('#conn-status[data-state="open"]')
    send(ana, "again")
    ai_reply(ana.page).locator(".body", has_text="again").last.wait_for()
    assert ana.page.is_hidden("#joined-note")
    assert ana.page.locator("#notices .notice").count() == 0
