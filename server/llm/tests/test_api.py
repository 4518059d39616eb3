"""The AI-session API (SPEC 3.3) and its permission rules on REST and socket."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async

from chat.services import room_create
from llm.models import AiChatSession
from llm.tests.factories import usage_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def echo(settings):
    settings.LLM_PROVIDER = "echo"


def start(client, room):
    return client.post_json("/api/llm/start_session/", {"room_uuid": str(room.pk)})


def test_start_session_answers_the_seeds_json(client_for, room, bob, echo):
    r = start(client_for(bob), room)
    assert r.status_code == 201
    body = r.json()
    assert body == {
        "result": "success",
        "session_id": body["session_id"],
        "room_uuid": str(room.pk),
        "room_name": "devs",
        "message": "AI 세션이 생성되었습니다.",
    }
    session = AiChatSession.objects.get(pk=body["session_id"])
    assert session.created_by == bob
    assert session.is_active


def test_start_session_creates_the_assistant_by_name(client_for, room, alice, echo):
    from accounts.models import User

    start(client_for(alice), room)
    assert User.objects.filter(username="AI_Assistant").count() == 1


@pytest.mark.parametrize("room_uuid", ["not-a-uuid", "", 42, None])
def test_start_session_validates_room_uuid(client_for, alice, echo, room_uuid):
    r = client_for(alice).post_json("/api/llm/start_session/", {"room_uuid": room_uuid})
    assert r.status_code == 400
    assert r.json()["code"] == "validation_error"


def test_start_session_in_a_room_not_mine_is_404(client_for, room, carol, echo):
    assert start(client_for(carol), room).status_code == 404
    r = client_for(carol).post_json("/api/llm/start_session/", {"room_uuid": str(uuid.uuid4())})
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


def test_start_session_without_provider_is_503(client_for, room, alice, settings):
    settings.DEBUG = False
    settings.LLM_PROVIDER = ""
    settings.OPENAI_API_KEY = ""
    r = start(client_for(alice), room)
    assert r.status_code == 503
    body = r.json()
    assert body["code"] == "ai_not_configured"
    assert "OPENAI_API_KEY" in body["message"]
    assert AiChatSession.objects.count() == 0


def test_debug_without_key_falls_back_to_echo(client_for, room, alice, settings):
    settings.DEBUG = True
    settings.LLM_PROVIDER = ""
    settings.OPENAI_API_KEY = ""
    r = start(client_for(alice), room)
    assert r.status_code == 201
    assert AiChatSession.objects.get().model == "echo"


def test_sessions_list_answers_the_seeds_json(client_for, room, alice, bob, carol, echo):
    first = start(client_for(alice), room).json()["session_id"]
    second = start(client_for(bob), room).json()["session_id"]
    other_room = room_create(owner=carol, name="other")
    start(client_for(carol), other_room)
    body = client_for(alice).get("/api/llm/sessions/").json()
    assert body["result"] == "success"
    assert body["total_count"] == 2
    assert [s["session_id"] for s in body["sessions"]] == [second, first]
    s = body["sessions"][0]
    assert set(s) == {
        "session_id",
        "room_uuid",
        "room_name",
        "created_at",
        "is_active",
        "created_by",
        # additive (SPEC Part two): a seed-only client ignores them
        "can_end",
        "title",
        "model",
        "persona",
        "system_prompt",
        "can_edit",
    }
    assert s["room_uuid"] == str(room.pk)
    assert s["room_name"] == "devs"
    assert s["created_by"] == "bob"
    assert s["is_active"] is True


def test_sessions_list_filters(client_for, room, alice, echo):
    c = client_for(alice)
    kept = start(c, room).json()["session_id"]
    ended = start(c, room).json()["session_id"]
    c.post_json(f"/api/llm/sessions/{ended}/deactivate/")
    other = room_create(owner=alice, name="other")
    start(c, other)
    by_room = c.get(f"/api/llm/sessions/?room_uuid={room.pk}").json()
    assert by_room["total_count"] == 2
    active = c.get(f"/api/llm/sessions/?room_uuid={room.pk}&active=true").json()
    assert [s["session_id"] for s in active["sessions"]] == [kept]
    inactive = c.get("/api/llm/sessions/?active=false").json()
    assert [s["session_id"] for s in inactive["sessions"]] == [ended]
    assert c.get("/api/llm/sessions/?room_uuid=nope").status_code == 400


def test_session_detail_with_usage_totals(client_for, room, alice, echo):
    c = client_for(alice)
    sid = start(c, room).json()["session_id"]
    body = c.get(f"/api/llm/sessions/{sid}/").json()
    session = body["session"]
    assert session["session_id"] == sid
    assert session["model"] == "echo"
    assert session["usage"] == {
        "requests": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "cost_usd": "0.000000",
        "estimated_requests": 0,
        "estimated_tokens": 0,
        "estimated_cost_usd": "0.000000",
        "unpriced_requests": 0,
    }


def test_deactivate_by_owner_creator_not_others(client_for, room, alice, bob, make_user, echo):
    dave = make_user("dave")
    room.participants.add(dave)
    sid = start(client_for(bob), room).json()["session_id"]
    staff = make_user("root", is_staff=True)
    room.participants.add(staff)
    # The session JSON says who may end it, so that no client re-derives the rule.
    for user, may in ((dave, False), (alice, True), (bob, True), (staff, True)):
        listed = client_for(user).get("/api/llm/sessions/").json()["sessions"]
        assert [s["can_end"] for s in listed if s["session_id"] == sid] == [may]
        assert client_for(user).get(f"/api/llm/sessions/{sid}/").json()["session"]["can_end"] is may
    r = client_for(dave).post_json(f"/api/llm/sessions/{sid}/deactivate/")
    assert r.status_code == 403
    r = client_for(alice).post_json(f"/api/llm/sessions/{sid}/deactivate/")
    assert r.status_code == 200
    session = r.json()["session"]
    assert session["is_active"] is False
    assert session["deactivated_by"] == "alice"
    assert session["deactivated_at"]
    assert session["can_end"] is False  # ended: nobody can end it again
    sid2 = start(client_for(bob), room).json()["session_id"]
    assert client_for(bob).post_json(f"/api/llm/sessions/{sid2}/deactivate/").status_code == 200


ENDPOINTS = [
    ("get", "/api/llm/sessions/{sid}/"),
    ("get", "/api/llm/sessions/{sid}/messages/"),
    ("post", "/api/llm/sessions/{sid}/deactivate/"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_outsiders_get_404_and_anonymous_401(
    client_for, anon, room, alice, make_user, echo, method, path
):
    sid = start(client_for(alice), room).json()["session_id"]
    outsider = client_for(make_user("mallory"))
    url = path.format(sid=sid)
    hidden = outsider.post_json(url) if method == "post" else outsider.get(url)
    missing_url = path.format(sid=uuid.uuid4())
    missing = outsider.post_json(missing_url) if method == "post" else outsider.get(missing_url)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    anonymous = anon.post_json(url) if method == "post" else anon.get(url)
    assert anonymous.status_code == 401


def test_session_messages_are_the_sessions_only(client_for, room, alice, echo):
    from accounts.services import assistant_user
    from chat.models import Message

    c = client_for(alice)
    sid = start(c, room).json()["session_id"]
    session = AiChatSession.objects.get(pk=sid)
    Message.objects.create(room=room, sender=alice, content="room chat")
    mine = Message.objects.create(room=room, ai_session=session, sender=alice, content="to the AI")
    answer = Message.objects.create(
        room=room, ai_session=session, sender=assistant_user(), content="answer"
    )
    body = c.get(f"/api/llm/sessions/{sid}/messages/").json()
    assert [m["message_id"] for m in body["messages"]] == [mine.pk, answer.pk]
    assert body["messages"][0]["is_self"] is True
    assert body["messages"][1]["is_ai"] is True
    after = c.get(f"/api/llm/sessions/{sid}/messages/?after={mine.pk}").json()
    assert [m["message_id"] for m in after["messages"]] == [answer.pk]
    room_chat = c.get(f"/api/chat/rooms/{room.pk}/messages/").json()
    assert [m["message"] for m in room_chat["messages"]] == ["room chat"]


# --- the socket ---------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
async def test_socket_close_codes(client_for, ws, room, alice, carol, settings):
    settings.LLM_PROVIDER = "echo"
    c = await sync_to_async(client_for)(alice)
    sid = (await sync_to_async(start)(c, room)).json()["session_id"]
    assert await (await ws(f"/ws/llm/{sid}/", None)).closed_with() == 4401
    assert await (await ws(f"/ws/llm/{sid}/", carol)).closed_with() == 4403
    assert await (await ws(f"/ws/llm/{uuid.uuid4()}/", alice)).closed_with() == 4404
    assert (
        await (await ws(f"/ws/llm/{sid}/", alice, origin="https://evil.example")).closed_with()
        == 4403
    )
    await sync_to_async(c.post_json)(f"/api/llm/sessions/{sid}/deactivate/")
    assert await (await ws(f"/ws/llm/{sid}/", alice)).closed_with() == 4410


@pytest.mark.django_db(transaction=True)
async def test_deactivation_ends_open_sockets(client_for, ws, room, alice, bob, settings):
    settings.LLM_PROVIDER = "echo"
    c = await sync_to_async(client_for)(alice)
    sid = (await sync_to_async(start)(c, room)).json()["session_id"]
    b = await ws(f"/ws/llm/{sid}/", bob)
    await b.recv_type("ai_joined")
    await sync_to_async(c.post_json)(f"/api/llm/sessions/{sid}/deactivate/")
    ended = await b.recv_type("ai_session_ended")
    assert ended["session_id"] == sid
    assert ended["message"]
    assert await b.closed_with() == 4410


@pytest.mark.django_db(transaction=True)
async def test_removed_participant_loses_the_session_socket(
    client_for, ws, room, alice, bob, settings
):
    settings.LLM_PROVIDER = "echo"
    c = await sync_to_async(client_for)(alice)
    sid = (await sync_to_async(start)(c, room)).json()["session_id"]
    b = await ws(f"/ws/llm/{sid}/", bob)
    await b.recv_type("ai_joined")
    await sync_to_async(c.delete)(f"/api/chat/rooms/{room.pk}/participants/bob/")
    assert await b.closed_with() == 4403


@pytest.mark.django_db(transaction=True)
async def test_echo_provider_streams_an_offline_reply(client_for, ws, room, alice, settings):
    settings.LLM_PROVIDER = "echo"
    c = await sync_to_async(client_for)(alice)
    sid = (await sync_to_async(start)(c, room)).json()["session_id"]
    s = await ws(f"/ws/llm/{sid}/", alice)
    await s.send_json_to({"type": "chat_message", "message": "hello there"})
    deltas = 0
    while True:
        f = await s.recv(5)
        if f["type"] == "ai_stream_delta":
            deltas += 1
        if f["type"] == "chat_message" and f["is_ai"]:
            break
    assert "오프라인" in f["message"]
    assert "hello there" in f["message"]
    assert deltas >= 2


@pytest.mark.django_db(transaction=True)
async def test_ai_session_rate_limit(client_for, ws, room, alice, settings):
    settings.LLM_PROVIDER = "echo"
    settings.LLM_USER_RATE = "2/minute"
    c = await sync_to_async(client_for)(alice)
    sid = (await sync_to_async(start)(c, room)).json()["session_id"]
    s = await ws(f"/ws/llm/{sid}/", alice)
    for i in range(2):
        await s.send_json_to({"type": "chat_message", "message": f"m{i}"})
        await s.recv_type("chat_message")
    await s.send_json_to({"type": "chat_message", "message": "too many"})
    err = await s.recv_type("ai_error")
    assert err["code"] == "rate_limited"
    assert err["retry_after"] >= 1
    from chat.models import Message

    assert await sync_to_async(Message.objects.filter(content="too many").count)() == 0


def test_admin_usage_list_shows_totals_and_sessions_can_be_deactivated(
    client_for, room, alice, make_user, echo
):
    session = AiChatSession.objects.create(room=room, created_by=alice, model="gpt-4o-mini")
    for tokens in (100, 23):
        usage_record(alice, room, session, "gpt-4o-mini", tokens, "0.5")
    staff = client_for(make_user("root", is_staff=True, is_superuser=True))
    page = staff.get("/admin/llm/llmusage/?model=gpt-4o-mini")
    assert page.status_code == 200
    assert page.context["usage_totals"]["total_tokens"] == 123
    assert b"123 tokens" in page.content
    r = staff.post(
        "/admin/llm/aichatsession/",
        {"action": "deactivate", "_selected_action": [str(session.pk)]},
    )
    assert r.status_code == 302
    session.refresh_from_db()
    assert session.is_active is False
