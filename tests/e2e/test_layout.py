"""The pages on a phone and on a wide screen: nothing wider than the window, the side panel
behind a button on a phone. Screenshots of the main pages are taken on the way; with
UPDATE_SCREENSHOTS=1 they replace the ones in docs/ that the README shows."""

from __future__ import annotations

import re
from collections.abc import Callable

from testkit.upstream import Behavior, FakeUpstream

from .conftest import Person, fits
from .test_ai import send

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
ANSWER = (
    "좋은 질문이에요. 재연결 후에는 **마지막으로 받은 메시지 id** 다음부터 "
    "다시 받아오면 됩니다.\n\n"
    "```javascript\n"
    "// 놓친 메시지를 빠짐없이, 한 번씩만\n"
    "async function catchUp(lastId) {\n"
    "  const res = await fetch(`/api/chat/rooms/${roomId}/messages/?after=${lastId}`);\n"
    "  return (await res.json()).messages;\n"
    "}\n"
    "```\n\n"
    "`has_more`가 `true`인 동안 반복하세요."
)


def test_pages_fit_phones_and_wide_screens(
    person: Callable[..., Person],
    upstream: FakeUpstream,
    shoot: Callable[[Person, str], None],
) -> None:
    minji = person(username="minji")
    daniel = person(username="daniel", locale="en-US")
    room = minji.api("POST", "/api/chat/rooms/", {"name": "백엔드 팀"})["room"]
    review = minji.api("POST", "/api/chat/rooms/", {"name": "프론트엔드 리뷰"})["room"]
    minji.api("POST", "/api/chat/rooms/", {"name": "인프라"})
    for each in (room, review):
        minji.api("POST", f"/api/chat/rooms/{each['id']}/participants/", {"username": "daniel"})
    room_path = f"/rooms/{room['id']}/"
    minji.open_chat(room_path)
    daniel.open_chat(room_path)
    for who, text in [
        (minji, "배포 전에 웹소켓 재연결 부분 한 번 더 볼까요?"),
        (daniel, "Sure, I saw a few duplicates after a network drop yesterday."),
        (minji, "@daniel 로그 남아 있으면 공유해 주세요. AI 세션 열어서 같이 물어봐요."),
    ]:
        send(who, text)
        minji.page.locator("#messages li.msg .body", has_text=text).wait_for()
    # daniel writes in another room while minji is away from it: unread and mention badges.
    daniel.open_chat(f"/rooms/{review['id']}/")
    for text in ["PR #42 리뷰 부탁드려요.", "@minji 모바일 레이아웃 확인 부탁해요 🙏"]:
        send(daniel, text)
        daniel.page.locator("#messages li.msg .body", has_text=text).wait_for()

    minji.goto("/rooms/")
    minji.page.locator("#room-list .count.mention").wait_for()
    shoot(minji, "rooms")
    minji.open_chat(room_path)
    minji.page.locator("#room-nav .count.mention").wait_for()
    daniel.open_chat(room_path)
    daniel.page.click("#message-input")
    # Typed as a person types: the server passes on one "typing" per person per 2 s, and
    # daniel said he was typing in this room a moment ago.
    daniel.page.keyboard.type("Here are the logs from yesterday's deploy", delay=120)
    minji.page.locator("#typing", has_text="daniel").wait_for()
    shoot(minji, "room")
    minji.page.keyboard.press("Control+k")
    minji.page.locator("#switcher-input").type("리뷰")
    minji.page.locator("#switcher-list li.active").wait_for()
    shoot(minji, "switcher")
    minji.page.keyboard.press("Escape")

    minji.page.click("#start-session")
    minji.page.wait_for_url(re.compile(r"/ai/[0-9a-f-]{36}/$"))
    minji.page.wait_for_selector('#conn-status[data-state="open"]')
    session_path = minji.page.url.removeprefix(minji.base_url)
    upstream.on("재연결", Behavior(text=ANSWER, by_words=True, delay=0.01, prompt_tokens=180))
    send(minji, "재연결 후에 메시지가 중복되거나 빠지지 않게 하려면 어떻게 해야 하나요?")
    minji.page.locator("#messages li.msg.ai .codeblock").wait_for()
    minji.page.wait_for_selector("#stop-button", state="hidden")
    minji.page.wait_for_selector('#notices .notice[data-key="joined"]', state="detached")
    shoot(minji, "ai-session")

    minji.goto("/usage/")
    minji.page.wait_for_selector("#chart-tokens-day svg rect.bar")
    shoot(minji, "usage")

    phone = person(username="minji-phone", **PHONE)
    phone_room = phone.api("POST", "/api/chat/rooms/", {"name": "모바일"})["room"]
    phone.open_chat(f"/rooms/{phone_room['id']}/")
    send(phone, "휴대폰에서도 잘 보이나요?")
    phone.page.locator("#messages li.msg", has_text="휴대폰").wait_for()
    side = phone.page.locator("#chat-side")
    toggle = phone.page.locator(".side-toggle")
    assert not side.is_visible()
    shoot(phone, "room-phone")
    toggle.click()
    assert side.is_visible()
    assert toggle.get_attribute("aria-expanded") == "true"
    fits(phone.page)
    side.locator(".side-close").click()
    assert not side.is_visible()
    assert toggle.get_attribute("aria-expanded") == "false"

    # The same pages at phone width, signed in as minji.
    minji_phone = person(signed_up=False, username="minji", **PHONE)
    minji_phone.context.add_cookies(minji.context.cookies())
    minji_phone.open_chat(session_path)
    minji_phone.page.locator("#messages li.msg.ai .codeblock").wait_for()
    shoot(minji_phone, "ai-session-phone")
    minji_phone.goto("/rooms/")
    minji_phone.page.locator("#room-list .count.mention").wait_for()
    shoot(minji_phone, "rooms-phone")
    for path in ("/usage/", room_path):
        minji_phone.goto(path)
        minji_phone.page.wait_for_load_state("networkidle")
        fits(minji_phone.page)

    visitor = person(signed_up=False, **PHONE)
    visitor.goto("/login/")
    fits(visitor.page)
    visitor.page.set_viewport_size({"width": 1280, "height": 800})
    shoot(visitor, "sign-in")
