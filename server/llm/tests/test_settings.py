"""Session settings (SPEC 10.1): a title, a model of LLM_MODELS, a persona preset or a prompt of
the session's own; changed by the session's creator, the room's owner or staff, with
`session_updated` and a note in the conversation; the next reply is asked with them. What the
local upstream receives (through the real SDK) is what is checked."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.core.checks import run_checks
from django.core.exceptions import ValidationError

from chat.models import Message
from llm.models import AiChatSession, Persona
from llm.services import persona_save
from llm.tests.sessions import start_session
from llm.tests.steering import asked, contents, until, until_reply
from testkit.upstream import Behavior

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("presets")]

SEED_KEYS = {"result", "session_id", "room_uuid", "room_name", "message"}


@pytest.fixture
def two_models(upstream, settings):
    settings.LLM_MODELS = ["gpt-4o-mini", "local-model"]
    return upstream


def english() -> Persona:
    return Persona.objects.get(key="developer-en")


async def ask(ws, sid, user, text="hi"):
    sock = await ws(f"/ws/llm/{sid}/", user)
    await sock.recv_type("ai_joined")
    await sock.send_json_to({"type": "chat_message", "message": text})
    return sock, await until_reply(sock)


async def session_json(client_for, user, sid):
    c = await sync_to_async(client_for)(user)
    return (await sync_to_async(c.get)(f"/api/llm/sessions/{sid}/")).json()["session"]


async def patch(client_for, user, sid, body):
    c = await sync_to_async(client_for)(user)
    return await sync_to_async(c.patch)(
        f"/api/llm/sessions/{sid}/", data=body, content_type="application/json"
    )


# --- opening a session -----------------------------------------------------------------------


async def test_a_seed_only_start_is_exactly_the_seeds_session(
    client_for, ws, upstream, room, alice, settings
):
    c = await sync_to_async(client_for)(alice)
    r = await sync_to_async(c.post_json)("/api/llm/start_session/", {"room_uuid": str(room.pk)})
    assert r.status_code == 201
    assert set(r.json()) == SEED_KEYS
    assert r.json()["message"] == "AI 세션이 생성되었습니다."
    sid = r.json()["session_id"]
    await ask(ws, sid, alice, "안녕")
    sent = asked(upstream)
    assert sent["model"] == settings.LLM_MODEL == "gpt-4o-mini"
    assert sent["messages"] == [
        {"role": "system", "content": settings.LLM_SYSTEM_PROMPT},
        {"role": "user", "content": "alice: 안녕"},
    ]
    assert sent["messages"][0]["content"].startswith("당신은 개발자 채팅방에 참여한")
    assert sent["max_completion_tokens"] == settings.LLM_MAX_OUTPUT_TOKENS
    session = await session_json(client_for, alice, sid)
    assert session["title"] == ""
    assert session["persona"] == "developer-ko"
    assert session["system_prompt"] == settings.LLM_SYSTEM_PROMPT
    assert session["model"] == "gpt-4o-mini"
    assert session["can_edit"] is True


async def test_the_default_persona_follows_llm_system_prompt(
    client_for, ws, upstream, room, alice, settings
):
    settings.LLM_SYSTEM_PROMPT = "You are a terse reviewer."
    sid = await start_session(client_for, alice, room)
    await ask(ws, sid, alice)
    assert asked(upstream)["messages"][0]["content"] == "You are a terse reviewer."


async def test_a_chosen_persona_model_and_title_are_what_the_provider_is_asked_with(
    client_for, ws, two_models, room, alice, bob
):
    sid = await start_session(
        client_for, alice, room, title="리뷰", persona="developer-en", model="local-model"
    )
    await ask(ws, sid, bob, "review this")
    sent = asked(two_models)
    assert sent["model"] == "local-model"
    prompt = await sync_to_async(lambda: english().system_prompt)()
    assert sent["messages"][0] == {"role": "system", "content": prompt}
    assert "Always answer in English" in prompt
    session = await session_json(client_for, bob, sid)
    assert (session["title"], session["persona"], session["model"]) == (
        "리뷰",
        "developer-en",
        "local-model",
    )
    assert session["system_prompt"] == prompt
    assert session["can_edit"] is False  # bob is neither its creator nor the room's owner


async def test_a_prompt_of_the_sessions_own(client_for, ws, upstream, room, alice):
    sid = await start_session(client_for, alice, room, system_prompt="  Answer only in haiku.  ")
    await ask(ws, sid, alice)
    assert asked(upstream)["messages"][0] == {"role": "system", "content": "Answer only in haiku."}
    session = await session_json(client_for, alice, sid)
    assert session["persona"] is None
    assert session["system_prompt"] == "Answer only in haiku."


async def test_a_persona_without_a_model_brings_its_own(client_for, ws, two_models, room, alice):
    def make():
        persona_save(
            persona=Persona(
                key="local", name="Local", system_prompt="Be local.", default_model="local-model"
            )
        )

    await sync_to_async(make)()
    sid = await start_session(client_for, alice, room, persona="local")
    await ask(ws, sid, alice)
    assert asked(two_models)["model"] == "local-model"
    assert asked(two_models)["messages"][0]["content"] == "Be local."


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"model": "gpt-5"}, "model: must be one of gpt-4o-mini, local-model."),
        ({"persona": "pirate"}, "persona: no preset 'pirate' (there are: "),
        ({"persona": "developer-en", "system_prompt": "x"}, "not both"),
        ({"system_prompt": "   "}, "system_prompt: must not be empty"),
        ({"system_prompt": "x" * 4001}, "system_prompt"),
        ({"title": "t" * 101}, "title: at most 100 characters."),
    ],
)
def test_bad_settings_are_a_400_that_says_why(client_for, two_models, room, alice, body, says):
    r = client_for(alice).post_json("/api/llm/start_session/", {"room_uuid": str(room.pk), **body})
    assert r.status_code == 400
    assert r.json()["code"] == "validation_error"
    assert says in r.json()["message"]
    assert not AiChatSession.objects.exists()


def test_presets_and_models_are_listed(client_for, two_models, alice, settings):
    c = client_for(alice)
    personas = c.get("/api/llm/personas/").json()["personas"]
    assert [p["key"] for p in personas] == ["developer-ko", "developer-en"]
    default = personas[0]
    assert default["is_default"] is True
    assert default["system_prompt"] == settings.LLM_SYSTEM_PROMPT
    assert default["model"] == "gpt-4o-mini"
    assert personas[1]["is_default"] is False
    models = c.get("/api/llm/models/").json()
    assert models["models"] == ["gpt-4o-mini", "local-model"]
    assert models["default"] == "gpt-4o-mini"


def test_the_offline_assistant_has_one_model(client_for, alice, settings):
    settings.LLM_PROVIDER = "echo"
    settings.LLM_MODELS = ["gpt-4o-mini", "local-model"]
    assert client_for(alice).get("/api/llm/models/").json()["models"] == ["echo"]


# --- changing a session ------------------------------------------------------------------------


async def test_a_change_reaches_everyone_with_a_note_and_steers_the_next_reply(
    client_for, ws, two_models, room, alice, bob
):
    sid = await start_session(client_for, alice, room)
    b = await ws(f"/ws/llm/{sid}/", bob)
    await b.recv_type("ai_joined")
    r = await patch(client_for, alice, sid, {"model": "local-model", "persona": "developer-en"})
    assert r.status_code == 200, r.content
    assert r.json()["session"]["model"] == "local-model"
    updated = await b.recv_type("session_updated")
    prompt = await sync_to_async(lambda: english().system_prompt)()
    assert updated["username"] == "alice"
    assert updated["session"] == {
        "session_id": sid,
        "title": "",
        "model": "local-model",
        "persona": "developer-en",
        "system_prompt": prompt,
    }
    note = await b.recv_type("chat_message")
    assert note["username"] == "alice"
    assert note["is_self"] is False
    assert note["message"] == (
        "alice switched the model to local-model; chose the persona Developer assistant (English)."
    )
    assert note["note"] == {
        "kind": "session_settings",
        "changes": [
            {"field": "model", "value": "local-model"},
            {"field": "persona", "value": "developer-en", "name": "Developer assistant (English)"},
        ],
    }
    await b.send_json_to({"type": "chat_message", "message": "which model?"})
    await until_reply(b)
    sent = asked(two_models)
    assert sent["model"] == "local-model"
    assert contents(sent) == [prompt, "bob: which model?"]  # the note is not said to the model
    c = await sync_to_async(client_for)(bob)
    history = (await sync_to_async(c.get)(f"/api/llm/sessions/{sid}/messages/")).json()
    assert history["messages"][0]["note"] == note["note"]
    assert "note" not in history["messages"][1]


async def test_a_reply_being_written_keeps_the_settings_it_started_with(
    client_for, ws, two_models, room, alice
):
    two_models.then(Behavior(text="long " * 40, chunk_chars=5, delay=0.02))
    sid = await start_session(client_for, alice, room)
    a = await ws(f"/ws/llm/{sid}/", alice)
    await a.recv_type("ai_joined")
    await a.send_json_to({"type": "chat_message", "message": "first"})
    await a.recv_type("ai_stream_delta")
    r = await patch(client_for, alice, sid, {"model": "local-model"})
    assert r.status_code == 200
    await a.send_json_to({"type": "chat_message", "message": "second"})
    await until_reply(a)
    await until_reply(a)
    assert [req.body["model"] for req in two_models.requests] == ["gpt-4o-mini", "local-model"]


async def test_a_title_or_prompt_change_is_noted_without_quoting_the_prompt(
    client_for, ws, upstream, room, alice
):
    sid = await start_session(client_for, alice, room)
    a = await ws(f"/ws/llm/{sid}/", alice)
    await a.recv_type("ai_joined")
    r = await patch(client_for, alice, sid, {"title": "배포", "system_prompt": "Secret plan."})
    assert r.status_code == 200
    updated = await a.recv_type("session_updated")
    # No preset now: the members learn it (a null, not a field left out).
    assert updated["session"]["persona"] is None
    assert updated["session"]["system_prompt"] == "Secret plan."
    note = await a.recv_type("chat_message")
    assert note["is_self"] is True
    assert note["message"] == (
        "alice renamed the session to “배포”; gave the assistant instructions of the session's own."
    )
    assert note["note"]["changes"] == [
        {"field": "title", "value": "배포"},
        {"field": "system_prompt", "value": ""},
    ]
    session = await session_json(client_for, alice, sid)
    assert (session["persona"], session["system_prompt"]) == (None, "Secret plan.")
    # Back to a preset: the session's own prompt is gone.
    r = await patch(client_for, alice, sid, {"persona": "developer-ko"})
    assert r.json()["session"]["system_prompt"].startswith("당신은")


def test_who_may_change_a_session(client_for, two_models, room, alice, bob, carol, make_user):
    staff = make_user("staffer", is_staff=True)
    bobs = client_for(bob).post_json("/api/llm/start_session/", {"room_uuid": str(room.pk)})
    sid = bobs.json()["session_id"]
    path = f"/api/llm/sessions/{sid}/"

    def change(user, model):
        return client_for(user).patch(path, data={"model": model}, content_type="application/json")

    assert change(carol, "local-model").status_code == 404  # not a member: no such session
    assert change(bob, "local-model").status_code == 200  # its creator
    assert change(alice, "gpt-4o-mini").status_code == 200  # the room's owner
    assert change(staff, "local-model").status_code == 200  # staff, though not a member
    other = client_for(alice).post_json("/api/llm/start_session/", {"room_uuid": str(room.pk)})
    r = client_for(bob).patch(
        f"/api/llm/sessions/{other.json()['session_id']}/",
        data={"title": "mine now"},
        content_type="application/json",
    )
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    notes = Message.objects.filter(ai_session_id=sid, note__isnull=False)
    assert [n.content for n in notes] == [
        "bob switched the model to local-model.",
        "alice switched the model to gpt-4o-mini.",
        "staffer switched the model to local-model.",
    ]
    client_for(bob).post_json(f"/api/llm/sessions/{sid}/deactivate/")
    r = change(bob, "gpt-4o-mini")
    assert (r.status_code, r.json()["code"]) == (410, "session_inactive")


def test_a_change_that_changes_nothing_notes_nothing(client_for, upstream, room, alice):
    sid = client_for(alice).post_json("/api/llm/start_session/", {"room_uuid": str(room.pk)})
    sid = sid.json()["session_id"]
    r = client_for(alice).patch(
        f"/api/llm/sessions/{sid}/",
        data={"model": "gpt-4o-mini", "persona": "developer-ko"},
        content_type="application/json",
    )
    assert r.status_code == 200
    r = client_for(alice).patch(
        f"/api/llm/sessions/{sid}/", data={}, content_type="application/json"
    )
    assert r.status_code == 200
    assert not Message.objects.filter(ai_session_id=sid).exists()


# --- presets in the admin, and the checks -------------------------------------------------------


def test_one_default_preset_at_a_time():
    before = Persona.objects.get(is_default=True)
    persona_save(persona=Persona(key="ops", name="Ops", system_prompt="Be brief.", is_default=True))
    assert list(Persona.objects.filter(is_default=True).values_list("key", flat=True)) == ["ops"]
    before.refresh_from_db()
    assert before.is_default is False


def test_a_presets_model_must_be_allowed(settings):
    settings.LLM_PROVIDER = "openai"
    settings.OPENAI_API_KEY = "sk-test-0123456789abcdefghijklmnop"
    settings.LLM_MODELS = ["gpt-4o-mini"]
    with pytest.raises(ValidationError) as refused:
        Persona(key="x", name="X", default_model="gpt-9").full_clean()
    assert "default_model" in refused.value.message_dict
    Persona(key="y", name="Y", default_model="gpt-4o-mini").full_clean()


def test_the_admin_edits_presets(client_for, make_user):
    staff = make_user("boss", is_staff=True, is_superuser=True)
    c = client_for(staff)
    assert c.get("/admin/llm/persona/").status_code == 200
    r = c.post(
        "/admin/llm/persona/add/",
        {"key": "sql", "name": "SQL", "system_prompt": "Only SQL.", "is_default": "on"},
    )
    assert r.status_code == 302, r.context["adminform"].form.errors
    assert Persona.objects.get(is_default=True).key == "sql"


def test_every_allowed_model_needs_a_price(settings):
    settings.LLM_PROVIDER = "openai"
    settings.OPENAI_API_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
    settings.LLM_MODEL = "gpt-4o-mini"
    settings.LLM_MODELS = ["gpt-4o-mini", "gpt-4o", "my-local"]
    warnings = [w for w in run_checks() if w.id == "llm.W004"]
    assert [w.msg for w in warnings] == [
        "No price is known for 'my-local' (LLM_MODELS): its cost will be recorded as unknown."
    ]
    settings.LLM_PRICES = {"my-local": {"input": 0, "output": 0}}
    from llm.prices import price_table

    price_table.cache_clear()
    try:
        assert [w for w in run_checks() if w.id == "llm.W004"] == []
    finally:
        price_table.cache_clear()


async def test_sessions_in_flight_are_unaffected_by_others_changes(
    client_for, ws, two_models, room, alice
):
    """Two sessions, one changed: the other is asked as before."""
    changed = await start_session(client_for, alice, room)
    kept = await start_session(client_for, alice, room)
    r = await patch(client_for, alice, changed, {"model": "local-model"})
    assert r.status_code == 200
    await asyncio.gather(ask(ws, changed, alice, "one"), ask(ws, kept, alice, "two"))
    models = {req.body["messages"][-1]["content"]: req.body["model"] for req in two_models.requests}
    assert models == {"alice: one": "local-model", "alice: two": "gpt-4o-mini"}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"title": "release", "model": "gpt-5"}, "model: must be one of"),
        ({"model": "local-model", "persona": "pirate"}, "persona: no preset 'pirate'"),
        ({"title": "t" * 101, "model": "local-model"}, "title: at most 100 characters."),
    ],
)
async def test_a_change_with_one_bad_field_changes_nothing(
    client_for, ws, two_models, room, alice, bob, body, says, settings
):
    sid = await start_session(client_for, alice, room)
    b = await ws(f"/ws/llm/{sid}/", bob)
    await b.recv_type("ai_joined")
    r = await patch(client_for, alice, sid, body)
    assert r.status_code == 400
    assert r.json()["code"] == "validation_error"
    assert says in r.json()["message"]
    session = await session_json(client_for, alice, sid)
    assert (session["title"], session["model"], session["persona"], session["system_prompt"]) == (
        "",
        "gpt-4o-mini",
        "developer-ko",
        settings.LLM_SYSTEM_PROMPT,
    )
    notes = Message.objects.filter(ai_session_id=sid)
    assert not await sync_to_async(notes.exists)()
    # Nobody was told: the first frames bob gets after the refusal are those of the next change,
    # made from the settings as they were.
    r = await patch(client_for, alice, sid, {"title": "next"})
    assert r.status_code == 200
    frames = await until(b, lambda f: f["type"] == "chat_message")
    told = [f for f in frames if f["type"] != "session_viewers"]
    assert [f["type"] for f in told] == ["session_updated", "chat_message"]
    assert (told[0]["session"]["title"], told[0]["session"]["model"]) == ("next", "gpt-4o-mini")
    assert told[1]["note"]["changes"] == [{"field": "title", "value": "next"}]
