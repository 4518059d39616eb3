"""The live workspace in the browser (issue 14): what happens outside the open page reaches it
without a reload: rooms, badges, the tab's title, presence, typing, sessions, renames and
deletions; @mentions complete, stand out and notify; Ctrl+K jumps; history shows its days and
loads older messages as one scrolls up. Two or three people, each in a browser context."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from testkit.servers import ServerProcess, manage

from .conftest import Person, room_of
from .test_ai import send

# A stand-in for the browser's Notification API that records what the page does with it: a
# headless browser shows no prompt and no notification. The permission it grants lives as long
# as the tab (sessionStorage); `window.__hidden` makes the tab count as hidden.
NOTIFICATIONS = """
window.__asked = 0;
window.__shown = [];
class RecordedNotification {
  constructor(title, options) { window.__shown.push({ title, body: options && options.body }); }
  addEventListener() {}
  static get permission() { return sessionStorage.getItem("permission") || "default"; }
  static requestPermission() {
    window.__asked += 1;
    sessionStorage.setItem("permission", "granted");
    return Promise.resolve("granted");
  }
}
window.Notification = RecordedNotification;
Object.defineProperty(document, "visibilityState", {
  get() { return window.__hidden ? "hidden" : "visible"; },
});
"""


def sidebar_room(page: Any, room: dict[str, Any]) -> Any:
    return page.locator(f'a.room-link[data-room-id="{room["id"]}"]')


def wait_live(who: Person) -> None:
    """The page's /ws/me/ is up and its rooms are drawn."""
    who.page.wait_for_selector('[aria-busy="false"]#room-nav, [aria-busy="false"]#room-list')


def test_rooms_badges_and_the_title_follow_what_happens_elsewhere(
    person: Callable[..., Person],
) -> None:
    ana = person("ana")
    ben = person("ben")
    first = room_of(ana, "설계", ben)
    ben.open_chat(f"/rooms/{first['id']}/")
    wait_live(ben)
    assert ben.page.title() == "설계 · 팀 채팅"
    # ben's second tab shows his rooms.
    tab = ben.context.new_page()
    tab.goto(f"{ben.base_url}/rooms/")
    tab.wait_for_selector('#room-list[aria-busy="false"] .room')

    # A room ana makes and adds him to appears in both, without a reload.
    second = room_of(ana, "잡담", ben)
    sidebar_room(ben.page, second).wait_for()
    sidebar_room(tab, second).wait_for()
    ana.open_chat(f"/rooms/{second['id']}/")
    send(ana, f"@{ben.username} 이것 좀 봐 주세요")
    send(ana, "그리고 이것도")

    # Both tabs: the room moves to the top with its badges and last message; the title counts
    # the unread mention.
    for page in (ben.page, tab):
        link = sidebar_room(page, second)
        link.locator(".count", has_text="2").wait_for()
        assert link.locator(".count.mention").inner_text() == "@1"
        assert "그리고 이것도" in link.locator(".preview").inner_text()
        assert page.locator("a.room-link").first.get_attribute("data-room-id") == second["id"]
    ben.page.wait_for_function("() => document.title === '(1) 설계 · 팀 채팅'")

    # ben opens it: the page starts at "New messages", and reading it clears the badges in
    # his other tab too (the `read` event), and the title's count.
    sidebar_room(ben.page, second).click()
    ben.page.wait_for_url(re.compile(rf"/rooms/{second['id']}/$"))
    line = ben.page.locator("#messages li.unread-line")
    line.wait_for()
    assert line.inner_text() == "새 메시지"
    first_unread = ben.page.locator("#messages li.unread-line + li.msg")
    assert "이것 좀 봐 주세요" in first_unread.inner_text()
    sidebar_room(tab, second).locator(".count").first.wait_for(state="detached")
    ben.page.wait_for_function("() => document.title === '잡담 · 팀 채팅'")
    tab.wait_for_function("() => !document.title.startsWith('(')")
    assert ben.errors == []


def test_sessions_members_and_presence_come_live(person: Callable[..., Person]) -> None:
    ana = person("ana")
    ben = person("ben")
    cai = person("cai")
    room = room_of(ana, "live", ben)
    ben.open_chat(f"/rooms/{room['id']}/")
    ben.page.locator("#sessions li.empty").wait_for()
    dot = ben.page.locator(f'#people li[data-name="{ana.username}"] .dot')
    assert "online" not in (dot.get_attribute("class") or "")

    # ana comes online (any page of hers) and goes offline (her last page closes).
    ana.goto("/rooms/")
    ben.page.wait_for_selector(f'#people li[data-name="{ana.username}"] .dot.online')
    # She starts a session: it is in ben's list at once, not at the next poll.
    session_id = ana.api("POST", "/api/llm/start_session/", {"room_uuid": room["id"]})["session_id"]
    ben.page.locator(f'#sessions li[data-session-id="{session_id}"]').wait_for(timeout=5_000)
    # She adds cai: ben's members list grows.
    ana.api("POST", f"/api/chat/rooms/{room['id']}/participants/", {"username": cai.username})
    ben.page.locator(f'#people li[data-name="{cai.username}"]').wait_for(timeout=5_000)
    ana.page.close()
    # Offline once she has been gone for longer than a move between pages (3 s).
    ben.page.wait_for_selector(
        f'#people li[data-name="{ana.username}"] .dot:not(.online)', timeout=10_000
    )
    assert ben.errors == []


def test_typing_shows_to_the_others_until_the_message_comes(
    person: Callable[..., Person],
) -> None:
    ana = person("ana")
    ben = person("ben")
    cai = person("cai")
    room = room_of(ana, "typing", ben, cai)
    for who in (ana, ben, cai):
        who.open_chat(f"/rooms/{room['id']}/")
    said: list[str] = []
    ana.page.on(
        "websocket",
        lambda ws: ws.on("framesent", lambda text: said.append(text) if "typing" in text else None),
    )
    ana.page.reload()  # so that the recorder sees the page's sockets from their start
    ana.page.wait_for_selector('#conn-status[data-state="open"]')
    ana.page.click("#message-input")
    ana.page.keyboard.type("half a thought")
    for who in (ben, cai):
        who.page.locator("#typing", has_text=f"{ana.username}이(가) 입력하는 중…").wait_for()
    assert ana.page.inner_text("#typing") == ""  # nobody tells ana that ana types
    # Fourteen keystrokes within 3 s: one `typing` from the page.
    assert said == ['{"type":"typing"}'], said
    ana.page.keyboard.press("Enter")
    for who in (ben, cai):
        who.page.locator("#messages li.msg .body", has_text="half a thought").wait_for()
        assert who.page.inner_text("#typing") == ""


def test_mentions_complete_stand_out_and_notify_once_allowed(
    person: Callable[..., Person],
) -> None:
    ana = person("ana")
    ben = person("ben")
    ben.context.add_init_script(NOTIFICATIONS)
    chat = room_of(ana, "mentions", ben)
    other = room_of(ana, "elsewhere", ben)

    # Completion: "@" and the start of a name offers the members; Enter takes one.
    ana.open_chat(f"/rooms/{chat['id']}/")
    ana.page.click("#message-input")
    ana.page.keyboard.type(f"hi @{ben.username[:2]}")
    picker = ana.page.locator("#mention-picker")
    picker.locator("li", has_text=f"@{ben.username}").wait_for()
    assert ana.username not in picker.inner_text()
    ana.page.keyboard.press("Enter")
    assert ana.page.input_value("#message-input") == f"hi @{ben.username} "
    ana.page.keyboard.type("look")
    ana.page.keyboard.press("Enter")

    # ben sees it stand out, live and after a reload (from history).
    ben.open_chat(f"/rooms/{chat['id']}/")
    for _ in range(2):
        message = ben.page.locator("#messages li.msg.mentions-me", has_text="look")
        message.wait_for()
        assert message.locator(".mention.me").inner_text() == f"@{ben.username}"
        ben.page.reload()
        ben.page.wait_for_selector('#conn-status[data-state="open"]')

    # Notifications: never asked on load; asked once, from a click.
    offer = ben.page.locator("#notify-offer")
    offer.wait_for()
    assert ben.page.evaluate("() => window.__asked") == 0
    offer.click()
    offer.wait_for(state="detached")
    assert ben.page.evaluate("() => window.__asked") == 1
    ben.page.reload()
    wait_live(ben)
    assert ben.page.locator("#notify-offer").count() == 0
    assert ben.page.evaluate("() => window.__asked") == 0

    # A mention while the tab is visible shows none; while it is hidden, one.
    ana.open_chat(f"/rooms/{other['id']}/")
    send(ana, f"@{ben.username} while you look")
    sidebar_room(ben.page, other).locator(".count.mention").wait_for()
    assert ben.page.evaluate("() => window.__shown") == []
    ben.page.evaluate(
        "() => { window.__hidden = true; document.dispatchEvent(new Event('visibilitychange')); }"
    )
    send(ana, f"@{ben.username} while you are away")
    ben.page.wait_for_function("() => window.__shown.length === 1")
    shown = ben.page.evaluate("() => window.__shown[0]")
    assert shown["title"] == f"{ana.username}이(가) elsewhere에서 나를 언급했습니다"
    assert shown["body"] == f"@{ben.username} while you are away"
    ben.page.wait_for_function("() => document.title.startsWith('(2) ')")


def test_ctrl_k_jumps_to_a_room_or_a_session(person: Callable[..., Person]) -> None:
    ana = person("ana")
    room_of(ana, "프론트엔드")
    backend = room_of(ana, "백엔드")
    session_id = ana.api("POST", "/api/llm/start_session/", {"room_uuid": backend["id"]})[
        "session_id"
    ]
    ana.goto("/usage/")
    wait_live_rooms = ana.page.locator("#jump")
    wait_live_rooms.wait_for()
    ana.page.keyboard.press("Control+k")
    box = ana.page.locator("#switcher-input")
    box.wait_for()
    box.type("프론트")
    options = ana.page.locator("#switcher-list li[role=option]")
    options.first.wait_for()
    assert options.count() == 1
    ana.page.keyboard.press("Enter")
    ana.page.wait_for_url(re.compile(r"/rooms/[0-9a-f-]{36}/$"))
    assert ana.page.inner_text("#room-title") == "프론트엔드"

    ana.page.keyboard.press("Control+k")
    box.type("백엔드")
    # The room and its session: which is chosen depends on which arrived first (the place
    # chosen is kept as the list grows under it), so ↓ is checked to move to the other one.
    options.nth(1).wait_for()
    assert options.count() == 2
    before = ana.page.inner_text("#switcher-list li.active")
    ana.page.keyboard.press("ArrowDown")
    moved = ana.page.locator("#switcher-list li.active", has_not_text=before)
    moved.wait_for()
    if "AI 세션" not in moved.inner_text():
        ana.page.keyboard.press("ArrowDown")  # from the last one back to the first
        ana.page.locator("#switcher-list li.active", has_text="AI 세션").wait_for()
    ana.page.keyboard.press("Enter")
    ana.page.wait_for_url(re.compile(rf"/ai/{session_id}/$"))


def test_rename_and_delete_reach_every_member(person: Callable[..., Person]) -> None:
    ana = person("ana")
    ben = person("ben")
    room = room_of(ana, "old name", ben)
    session_id = ana.api("POST", "/api/llm/start_session/", {"room_uuid": room["id"]})["session_id"]
    ben.open_chat(f"/rooms/{room['id']}/")
    on_session = ben.context.new_page()
    on_session.goto(f"{ben.base_url}/ai/{session_id}/")
    on_session.wait_for_selector('#conn-status[data-state="open"]')
    assert ben.page.is_hidden("#room-settings")

    ana.open_chat(f"/rooms/{room['id']}/")
    ana.page.fill("#room-rename", "new name")
    ana.page.click("#rename-room button[type=submit]")
    ben.page.locator("#room-title", has_text="new name").wait_for()
    ben.page.wait_for_function("() => document.title === 'new name · 팀 채팅'")
    assert sidebar_room(ben.page, room).locator(".room-name").inner_text() == "new name"

    delete = ana.page.locator("#delete-room")
    delete.click()
    assert delete.inner_text() == "한 번 더 누르면 모두에게서 채팅방이 삭제됩니다"
    delete.click()
    ana.page.wait_for_url(re.compile(r"/rooms/$"))
    ben.page.locator(
        '#notices .notice[data-key="final"]', has_text="더 이상 존재하지 않습니다"
    ).wait_for()
    assert ben.page.is_disabled("#message-input")
    sidebar_room(ben.page, room).wait_for(state="detached")
    on_session.wait_for_selector('#conn-status[data-state="closed"]')
    assert on_session.is_disabled("#message-input")


def test_history_shows_its_days_and_loads_older_messages_while_scrolling_up(
    person: Callable[..., Person], web_server: ServerProcess
) -> None:
    ana = person("ana")
    room = room_of(ana, "history")
    # 120 messages, the first 70 of them yesterday: more than two pages.
    manage(
        web_server.env,
        "shell",
        "-c",
        "from datetime import timedelta\n"
        "from django.utils import timezone\n"
        "from chat.models import ChatRoom, Message\n"
        f"room = ChatRoom.objects.get(pk='{room['id']}')\n"
        "now = timezone.now()\n"
        "for n in range(120):\n"
        "    at = now - timedelta(days=1 if n < 70 else 0, seconds=120 - n)\n"
        "    Message.objects.create(room=room, sender=room.owner, content=f'line {n}', "
        "created_at=at)\n",
    )
    ana.open_chat(f"/rooms/{room['id']}/")
    messages = ana.page.locator("#messages li.msg")
    ana.page.locator("#messages li.msg", has_text="line 119").wait_for()
    assert messages.count() == 50
    assert ana.page.locator("#messages li.day").all_inner_texts() == ["오늘"]
    # Scrolling to the top loads the older pages, with no button pressed.
    for _ in range(10):
        shown = messages.count()  # before the scroll: the page it loads may come at once
        if shown == 120:
            break
        # From the bottom to the top, as a reader does: the top comes into view each time.
        ana.page.eval_on_selector("#scroller", "el => { el.scrollTop = el.scrollHeight; }")
        ana.page.eval_on_selector("#scroller", "el => { el.scrollTop = 0; }")
        ana.page.wait_for_function(
            "n => document.querySelectorAll('#messages li.msg').length > n", arg=shown
        )
    assert messages.count() == 120
    texts = [t.strip() for t in ana.page.locator("#messages li.msg .body").all_inner_texts()]
    assert texts == [f"line {n}" for n in range(120)]
    assert ana.page.locator("#messages li.day").all_inner_texts() == ["어제", "오늘"]
    yesterday_last = ana.page.locator("#messages li.msg", has_text="line 69")
    today_first = ana.page.locator("#messages li.day + li.msg").last
    assert "line 70" in today_first.inner_text()
    assert yesterday_last.count() == 1
    ana.page.wait_for_selector("#load-older", state="hidden")


def test_empty_rooms_and_sessions_say_what_to_do(person: Callable[..., Person]) -> None:
    ana = person("ana")
    room = room_of(ana, "empty")
    ana.open_chat(f"/rooms/{room['id']}/")
    empty = ana.page.locator("#empty")
    empty.wait_for()
    assert "아직 메시지가 없습니다" in empty.inner_text()
    send(ana, "first words")
    ana.page.locator("#messages li.msg", has_text="first words").wait_for()
    assert empty.is_hidden()

    session_id = ana.api("POST", "/api/llm/start_session/", {"room_uuid": room["id"]})["session_id"]
    ana.open_chat(f"/ai/{session_id}/")
    ana.page.locator("#empty", has_text="아직 질문이 없습니다").wait_for()


def test_signing_out_lands_on_sign_in_when_the_sockets_close_first(
    person: Callable[..., Person],
) -> None:
    """Signing out closes the user's sockets (4401) while the page is on its way to the sign-in
    page; the page must not take that for an expired session and go instead to sign in "next"
    to where it was."""
    ana = person("ana")
    room = room_of(ana, "퇴근")
    sockets: list[Any] = []
    ana.page.on("websocket", lambda sock: sockets.append(sock))
    ana.open_chat(f"/rooms/{room['id']}/")
    wait_live(ana)
    # The way to the sign-in page is held until her sockets are closed, so that the page is
    # still there to hear them close.
    held: list[Any] = []
    ana.page.route(lambda url: urlsplit(url).path == "/login/", lambda route: held.append(route))
    ana.page.click("#sign-out")
    while not held:
        ana.page.wait_for_timeout(20)
    for sock in sockets:
        if not sock.is_closed():
            sock.wait_for_event("close")
    ana.page.unroute_all()
    for route in held:
        with contextlib.suppress(Exception):  # one superseded by a later navigation
            route.continue_()
    ana.page.wait_for_load_state()
    assert [urlsplit(route.request.url).query for route in held] == [""]
    assert urlsplit(ana.page.url).path == "/login/"
