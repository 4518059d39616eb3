"""Steering the assistant in the browser (SPEC 10): which question each reply answers, the
questions waiting with the asker's own Withdraw, Regenerate with its versions, the session's
settings, @AI_Assistant in room chat, and Catch me up. Screenshots of each are taken on the way
(into docs/ with UPDATE_SCREENSHOTS=1, for the README)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from testkit.upstream import Behavior, FakeUpstream

from .conftest import Person
from .test_ai import room_with, send, start_session
from .test_layout import PHONE

SLOW = [f"word{n} " for n in range(90)]


def replies(page: Any) -> Any:
    """The assistant's replies as shown (versions of one question are shown as one)."""
    return page.locator("#messages li.msg.ai:not([hidden])")


def message_id(page: Any, text: str) -> str:
    return str(
        page.locator("#messages li.msg", has_text=text).last.get_attribute("data-message-id")
    )


def test_each_reply_says_which_question_it_answers_and_the_queue_waits(
    person: Callable[..., Person], upstream: FakeUpstream, shoot: Callable[[Person, str], None]
) -> None:
    ana = person("ana")
    ben = person("ben", locale="en-US")
    room = room_with(ana, ben)
    session_id = start_session(ana, room)
    ben.open_chat(f"/ai/{session_id}/")

    upstream.on("slow-topic", Behavior(pieces=tuple(SLOW), delay=0.06))
    send(ana, "please explain slow-topic in detail")
    ana.page.locator("#tail li.msg.ai.streaming .body", has_text="word3").wait_for()
    send(ben, "what is 2+2?")
    ben.page.locator("#ai-queue li").first.wait_for()
    send(ana, "and a follow-up")

    # Both pages list the two questions waiting; each may withdraw only their own.
    ana.page.locator("#ai-queue .queue-title", has_text="질문 2개 대기 중").wait_for()
    ben.page.locator("#ai-queue .queue-title", has_text="2 questions waiting").wait_for()
    for who, mine, theirs in ((ana, "and a follow-up", "2+2"), (ben, "2+2", "and a follow-up")):
        assert who.page.locator("#ai-queue li", has_text=mine).locator("button").count() == 1
        assert who.page.locator("#ai-queue li", has_text=theirs).locator("button").count() == 0
    streaming = ana.page.locator("#tail li.msg.ai.streaming .thread")
    assert (
        streaming.inner_text()
        == f"↳ {ana.username} 님에게 답변: please explain slow-topic in detail"
    )
    shoot(ana, "steering-queue")

    ben.page.locator("#ai-queue li", has_text="2+2").locator("button").click()
    for who in (ana, ben):
        who.page.locator("#ai-queue li", has_text="2+2").wait_for(state="detached")
    ana.page.locator("#ai-queue .queue-title", has_text="질문 1개 대기 중").wait_for()

    # Every reply says which question it answers; the withdrawn one has none.
    follow_up = replies(ben.page).filter(has_text="Echo: and a follow-up")
    follow_up.wait_for(timeout=20_000)
    assert (
        follow_up.locator(".thread").inner_text() == f"↳ answering {ana.username}: and a follow-up"
    )
    first = replies(ben.page).filter(has_text="word89")
    assert first.locator(".thread").inner_text().startswith(f"↳ answering {ana.username}: please")
    assert replies(ana.page).count() == 2
    ana.page.wait_for_selector("#ai-queue", state="hidden")
    assert "2+2" not in upstream.requests[-1].user_text
    assert all(call.user_text != f"{ben.username}: what is 2+2?" for call in upstream.requests)
    # A click on the line shows the question.
    first.locator(".thread").click()
    question = ben.page.locator("#messages li.msg:not(.ai)", has_text="please explain slow-topic")
    assert "flash" in (question.get_attribute("class") or "")
    shoot(ben, "steering-threads")
    assert ana.errors == ben.errors == []


def test_regenerate_keeps_the_earlier_answer_as_a_version(
    person: Callable[..., Person], upstream: FakeUpstream, shoot: Callable[[Person, str], None]
) -> None:
    ana = person("ana")
    ben = person("ben")
    room = room_with(ana, ben)
    session_id = start_session(ana, room)
    ben.open_chat(f"/ai/{session_id}/")
    upstream.on("tell-joke", Behavior(pieces=("a first ", "joke"), prompt_tokens=40))
    send(ana, "tell-joke please")
    replies(ana.page).filter(has_text="a first joke").wait_for()
    reply = replies(ana.page).last
    reply.locator(".usage", has_text="gpt-4o-mini · 토큰 42개 · $").wait_for()
    assert reply.locator(".regenerate").inner_text() == "다시 생성"

    upstream.on("tell-joke", Behavior(by_words=True, text="a second, better joke", delay=0.05))
    ben.page.locator("#messages li.msg.ai .regenerate").click()
    # The new answer is written in the place of the one it replaces, on both pages.
    for who in (ana, ben):
        replies(who.page).filter(has_text="a second, better joke").wait_for()
        assert replies(who.page).count() == 1
        shown = replies(who.page).last
        assert shown.locator(".version").inner_text() == "2/2"
        assert shown.locator(".thread").count() == 1
    assert len([c for c in upstream.requests if "tell-joke" in c.user_text]) == 2
    shoot(ana, "steering-versions")

    ana.page.get_by_role("button", name="이전 답변").click()
    replies(ana.page).filter(has_text="a first joke").wait_for()
    assert replies(ana.page).last.locator(".version").inner_text() == "1/2"
    assert ana.page.get_by_role("button", name="이전 답변").is_disabled()
    # A reload shows the same: the versions come with the history.
    ben.page.reload()
    ben.page.wait_for_selector('#conn-status[data-state="open"]')
    replies(ben.page).filter(has_text="a second, better joke").wait_for()
    assert replies(ben.page).last.locator(".version").inner_text() == "2/2"
    assert ana.errors == ben.errors == []


def test_the_session_settings_panel_steers_the_next_reply(
    person: Callable[..., Person], upstream: FakeUpstream, shoot: Callable[[Person, str], None]
) -> None:
    ana = person("ana")
    ben = person("ben", locale="en-US")
    room = room_with(ana, ben)
    session_id = start_session(ana, room)
    ben.open_chat(f"/ai/{session_id}/")
    form = ana.page.locator("#steer-form")
    form.wait_for()
    ben.page.locator("#steer-facts dt").first.wait_for()
    assert ben.page.locator("#steer-form").is_hidden()
    # Every member sees what the assistant is told (the text of a closed <details>).
    told = ben.page.locator("#steer-prompt").text_content()
    assert told.startswith("당신은 개발자 채팅방에 참여한")

    ana.page.fill("#steer-title", "배포 리뷰")
    ana.page.select_option("#steer-model", "gpt-4o")
    ana.page.select_option("#steer-persona", "developer-en")
    form.locator("button[type=submit]").click()
    form.locator(".saved").wait_for()
    note = ben.page.locator("#messages li.msg.note")
    note.wait_for()
    assert note.inner_text().startswith(
        f"{ana.username} renamed the session to “배포 리뷰”; switched the model to gpt-4o; "
        "chose the persona Developer assistant (English)."
    )
    assert (
        ana.page.locator("#messages li.msg.note")
        .inner_text()
        .startswith(
            f"{ana.username} 님이 세션 이름을 “배포 리뷰”(으)로 변경, 모델을 gpt-4o(으)로 변경, "
            "페르소나를 Developer assistant (English)(으)로 변경했습니다."
        )
    )
    ben.page.locator("#steer-facts", has_text="gpt-4o").wait_for()
    ben.page.locator("#session-title", has_text="배포 리뷰").wait_for()
    assert "Always answer in English" in ben.page.locator("#steer-prompt").text_content()

    send(ben, "which-model are you?")
    replies(ben.page).filter(has_text="which-model").wait_for()
    assert upstream.request_for("which-model").body["model"] == "gpt-4o"
    # The model shows as the reply streams; its tokens and cost once it is saved.
    replies(ben.page).last.locator(".usage", has_text="gpt-4o · ").wait_for()

    # Instructions of the session's own.
    ana.page.select_option("#steer-persona", "")
    ana.page.fill("#steer-prompt-input", "Answer in one short sentence.")
    shoot(ana, "steering-settings")
    form.locator("button[type=submit]").click()
    ben.page.locator("#steer-prompt", has_text="Answer in one short sentence.").wait_for(
        state="attached"
    )
    ben.page.locator("#steer-facts", has_text="Instructions of its own").wait_for()
    assert ana.errors == ben.errors == []


def test_at_ai_assistant_in_room_chat_is_answered_in_the_room(
    person: Callable[..., Person], upstream: FakeUpstream, shoot: Callable[[Person, str], None]
) -> None:
    ana = person("ana")
    ben = person("ben")
    room = room_with(ana, ben)
    path = f"/rooms/{room['id']}/"
    ana.open_chat(path)
    ben.open_chat(path)
    send(ana, "배포는 금요일 오후로 하죠")
    upstream.on(
        "room-question",
        Behavior(by_words=True, text="금요일 **오후 3시**가 좋겠습니다.", delay=0.05),
    )
    send(ben, "@AI_Assistant room-question: 언제가 좋을까요?")
    for who in (ana, ben):
        reply = replies(who.page).last
        reply.locator("strong", has_text="오후 3시").wait_for()
        assert (
            reply.locator(".thread")
            .inner_text()
            .startswith(f"↳ {ben.username} 님에게 답변: @AI_Assistant")
        )
    call = upstream.request_for("room-question")
    assert call.user_text == f"{ben.username}: @AI_Assistant room-question: 언제가 좋을까요?"
    shoot(ben, "steering-room-mention")

    # The owner turns it off; the members' pages say so, and a mention asks nothing.
    assert ben.page.locator("#mentions-switch").is_hidden()
    ana.page.locator("#ai-mentions").uncheck()
    ben.page.locator("#mentions-state", has_text="방장이 꺼 두었습니다").wait_for()
    calls = len(upstream.requests)
    send(ben, "@AI_Assistant are you there?")
    send(ana, "marker")
    ben.page.locator("#messages li.msg .body", has_text="marker").wait_for()
    assert len(upstream.requests) == calls
    assert replies(ben.page).count() == 1
    assert ana.errors == ben.errors == []


def test_catch_me_up_streams_a_summary_for_the_reader_alone(
    person: Callable[..., Person], upstream: FakeUpstream, shoot: Callable[[Person, str], None]
) -> None:
    ana = person("ana")
    ben = person("ben")
    room = room_with(ana, ben)
    path = f"/rooms/{room['id']}/"
    ben.open_chat(path)
    send(ben, "before you left")
    ben.page.locator("#messages li.msg .body", has_text="before you left").wait_for()
    lines = [f"point {n}: catchup-topic item" for n in range(12)]
    for line in lines:
        send(ben, line)
    ben.page.locator("#messages li.msg .body", has_text="point 11:").wait_for()
    last_read = int(message_id(ben.page, "before you left"))
    summary = "- **12 points** about catchup-topic\n- nothing decided yet"
    upstream.on(
        "catchup-topic", Behavior(by_words=True, text=summary, delay=0.05, prompt_tokens=300)
    )

    # The unread count and read marker come with the room (SPEC 9.2, another part of the
    # product); here they are given to the page as the room JSON will carry them.
    def with_unread(route: Any) -> None:
        if route.request.method != "GET":
            route.fallback()
            return
        body = route.fetch().json()
        body["room"].update(unread_count=12, last_read_message_id=last_read)
        route.fulfill(json=body)

    ana.page.route(re.compile(rf"/api/chat/rooms/{room['id']}/$"), with_unread)
    ana.open_chat(path)
    offer = ana.page.locator("#catchup-offer")
    offer.wait_for()
    assert offer.locator("#catchup-count").inner_text() == "읽지 않은 메시지 12개"
    ana.page.click("#catchup-button")
    panel = ana.page.locator("#catchup")
    panel.locator("strong", has_text="12 points").wait_for()
    panel.locator("#catchup-usage", has_text="토큰").wait_for()
    assert panel.locator("#catchup-left-out").inner_text() == "메시지 12개를 요약했습니다."
    call = upstream.request_for("catchup-topic")
    assert call.user_text == "\n".join(f"{ben.username}: {line}" for line in lines)
    assert offer.is_hidden()
    shoot(ana, "steering-catch-up")
    # Only the reader sees it; the room chat has nothing new.
    assert ben.page.locator("#catchup").is_hidden()
    assert ben.page.locator("#messages li.msg").count() == 13
    ana.page.click("#catchup-close")
    assert panel.is_hidden()
    assert ana.errors == []


def test_the_new_screens_fit_a_phone(
    person: Callable[..., Person], upstream: FakeUpstream, shoot: Callable[[Person, str], None]
) -> None:
    ana = person("ana", **PHONE)
    ben = person("ben")
    room = room_with(ana, ben)
    session_id = ben.api("POST", "/api/llm/start_session/", {"room_uuid": room["id"]})["session_id"]
    ana.open_chat(f"/ai/{session_id}/")
    ben.open_chat(f"/ai/{session_id}/")
    upstream.on("phone-slow", Behavior(pieces=tuple(SLOW), delay=0.06))
    send(ben, "phone-slow answer please")
    ana.page.locator("#tail li.msg.ai.streaming .body", has_text="word2").wait_for()
    send(ana, "a question from my phone")
    ana.page.locator("#ai-queue li", has_text="a question from my phone").wait_for()
    shoot(ana, "steering-queue-phone")
    ana.page.locator(".side-toggle").click()
    ana.page.locator("#steer-facts dt").first.wait_for()
    shoot(ana, "steering-settings-phone")
    assert ana.errors == []
