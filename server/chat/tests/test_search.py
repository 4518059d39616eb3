"""Search (SPEC 9.4): the caller's rooms and sessions only, Korean and English substrings,
newest first, paginated, the matched parts marked."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.services import assistant_user
from chat.models import Message
from chat.search import marked_parts
from chat.services import room_create
from llm.models import AiChatSession

pytestmark = pytest.mark.django_db


def say(room, sender, text, **extra):
    return Message.objects.create(room=room, sender=sender, content=text, **extra)


def search(client, q, **query):
    r = client.get("/api/chat/search/", {"q": q, **query})
    return r.status_code, r.json()


def test_korean_and_english_substrings_match(client_for, room, alice, bob):
    ko = say(room, bob, "내일 회의록 정리해 주세요")
    en = say(room, alice, "The Deploy failed at 3 pm")
    say(room, alice, "nothing to see")
    client = client_for(bob)
    for q, found in (("회의", ko), ("의록 정", ko), ("deploy", en), ("LOY FAIL", en)):
        status, body = search(client, q)
        assert status == 200
        assert [r["message_id"] for r in body["results"]] == [found.pk], q


def test_results_are_the_callers_rooms_and_sessions_newest_first(
    client_for, room, alice, bob, carol
):
    session = AiChatSession.objects.create(room=room, created_by=alice, model="m")
    older = say(room, bob, "release notes draft")
    question = say(room, alice, "write the release notes", ai_session=session)
    answer = say(room, assistant_user(), "Here are the release notes", ai_session=session)
    elsewhere = room_create(owner=carol, name="secret")
    say(elsewhere, carol, "release notes of the secret room")
    gone = say(room, bob, "release notes, deleted")
    client_for(bob).delete(f"/api/chat/messages/{gone.pk}/")
    status, body = search(client_for(bob), "release notes")
    assert status == 200
    assert [r["message_id"] for r in body["results"]] == [answer.pk, question.pk, older.pk]
    top = body["results"][0]
    assert (top["is_ai"], top["room_id"], top["room_name"]) == (True, str(room.pk), "devs")
    assert top["session_id"] == str(session.pk)
    assert body["results"][2]["session_id"] is None
    # carol sees only her room's message.
    _, hers = search(client_for(carol), "release notes")
    assert [r["room_name"] for r in hers["results"]] == ["secret"]


def test_pages_go_on_with_before(client_for, room, alice):
    made = [say(room, alice, f"note {n}") for n in range(5)]
    client = client_for(alice)
    _, first = search(client, "note", limit=2)
    assert [r["message_id"] for r in first["results"]] == [made[4].pk, made[3].pk]
    assert first["has_more"] is True
    _, rest = search(client, "note", limit=5, before=made[3].pk)
    assert [r["message_id"] for r in rest["results"]] == [m.pk for m in reversed(made[:3])]
    assert rest["has_more"] is False


def test_one_room_only_and_a_room_of_someone_else_is_not_found(client_for, room, alice, carol):
    other = room_create(owner=alice, name="other")
    here = say(room, alice, "pizza friday")
    say(other, alice, "pizza monday")
    _, body = search(client_for(alice), "pizza", room_uuid=str(room.pk))
    assert [r["message_id"] for r in body["results"]] == [here.pk]
    status, body = search(client_for(carol), "pizza", room_uuid=str(room.pk))
    assert (status, body["code"]) == (404, "not_found")


def test_the_matched_parts_are_marked_as_plain_text(client_for, room, alice):
    say(room, alice, "<b>Deploy</b> then deploy again")
    _, body = search(client_for(alice), "deploy")
    parts = body["results"][0]["parts"]
    assert parts == [
        {"text": "<b>", "match": False},
        {"text": "Deploy", "match": True},
        {"text": "</b> then ", "match": False},
        {"text": "deploy", "match": True},
        {"text": " again", "match": False},
    ]
    assert "".join(p["text"] for p in parts) == body["results"][0]["message"]


def test_marked_parts_of_text_without_the_query_is_the_text():
    assert marked_parts("abc", "x") == [("abc", False)]
    assert marked_parts("", "x") == [("", False)]
    assert marked_parts("xx", "x") == [("x", True), ("x", True)]


def test_like_wildcards_in_the_query_are_literal(client_for, room, alice):
    percent = say(room, alice, "CPU at 50% now")
    say(room, alice, "CPU at 500 now")
    under = say(room, alice, "file_name.txt")
    say(room, alice, "filename.txt")
    back = say(room, alice, "C:\\temp")
    client = client_for(alice)
    assert [r["message_id"] for r in search(client, "50%")[1]["results"]] == [percent.pk]
    assert [r["message_id"] for r in search(client, "e_n")[1]["results"]] == [under.pk]
    assert [r["message_id"] for r in search(client, ":\\t")[1]["results"]] == [back.pk]


@pytest.mark.parametrize("q", ["", " ", "a", "x" * 201])
def test_a_query_too_short_or_too_long_is_refused(client_for, room, alice, q):
    status, body = search(client_for(alice), q)
    assert (status, body["code"]) == (400, "validation_error")


def test_search_query_count_is_pinned(client_for, room, alice, bob):
    session = AiChatSession.objects.create(room=room, created_by=alice, model="m")
    for n in range(10):
        say(room, bob, f"hit {n}")
        say(room, alice, f"hit {n}", ai_session=session)
    client = client_for(alice)
    client.get("/api/auth/me/")
    with CaptureQueriesContext(connection) as ctx:
        _, body = search(client, "hit", limit=20)
    assert len(body["results"]) == 20
    # session + user + the user's rooms + the page
    assert len(ctx.captured_queries) == 4


@pytest.mark.postgres
@pytest.mark.parametrize("q", ["쓰는 검", "Deploy"])
def test_postgresql_can_answer_the_match_from_the_trigram_index(room, alice, q):
    """Korean and English alike, the match search makes (ILIKE) is one the trigram index
    answers (with a big table the planner chooses it: BENCHMARKS.md shows the plan)."""
    from chat.search import like_pattern, message_search

    say(room, alice, "인덱스를 쓰는 검색, deploy 후에")
    with CaptureQueriesContext(connection) as ctx:
        page = message_search(user=alice, q=q)
    assert len(page.hits) == 1
    assert '"chat_message"."content" ILIKE' in ctx.captured_queries[-1]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM chat_message WHERE content ILIKE %s", [like_pattern(q)]
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert "Bitmap Index Scan on chat_msg_content_trgm" in plan, plan
