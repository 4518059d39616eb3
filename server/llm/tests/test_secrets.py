"""No API key, password or session cookie in a log line, an HTTP answer or a socket frame
(SPEC 5, issue 7). A realistic flow runs with every logger at DEBUG (the SDK's and the HTTP
client's included) and everything it produced is searched for the secrets it handled."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from conftest import ApiClient
from django.conf import settings as django_settings

from llm.providers.openai import reset_clients
from testkit.upstream import Behavior

pytestmark = pytest.mark.django_db(transaction=True)

LOGGERS = ("", "django", "django.request", "openai", "httpx", "httpcore", "llm", "channels")


def _key() -> str:
    return "sk-proj-" + secrets.token_urlsafe(36)


async def test_secrets_appear_in_no_log_answer_or_frame(ws, upstream, settings, caplog):
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    good_key, revoked_key = _key(), _key()
    upstream.api_key = settings.OPENAI_API_KEY = good_key
    reset_clients()
    password = "Tangerine-" + secrets.token_urlsafe(12)
    weak = "8" + "".join(secrets.choice("0123456789") for _ in range(12))
    wrong = "Wrong-" + secrets.token_urlsafe(12)
    upstream.default = Behavior(text="네, 도와드릴게요.", chunk_chars=3)

    answers: list[str] = []
    cookies: list[str] = []
    client = ApiClient()

    async def post(path: str, body: Any, status: int) -> Any:
        response = await sync_to_async(client.post_json)(path, body)
        answers.append(response.content.decode())
        assert response.status_code == status, (path, answers[-1])
        cookie = client.cookies.get(django_settings.SESSION_COOKIE_NAME)
        if cookie is not None and cookie.value:
            cookies.append(cookie.value)
        return response.json()

    await post("/api/auth/signup/", {"username": "erin", "password": weak}, 400)
    await post("/api/auth/signup/", {"username": "dana", "password": password}, 201)
    await post("/api/auth/logout/", None, 200)
    await post("/api/auth/login/", {"username": "dana", "password": wrong}, 401)
    await post("/api/auth/login/", {"username": "nobody", "password": password}, 401)
    await post("/api/auth/login/", {"username": "dana", "password": password}, 200)
    room = (await post("/api/chat/rooms/", {"name": "secrets"}, 201))["room"]["id"]
    session = (await post("/api/llm/start_session/", {"room_uuid": room}, 201))["session_id"]
    me = await sync_to_async(client.get)("/api/auth/me/")
    answers.append(me.content.decode())

    frames: list[dict[str, Any]] = []
    sock = await ws(f"/ws/llm/{session}/", None, cookie=cookies[-1])

    async def until(kind: str, code: str | None = None) -> None:
        while True:
            frame = await sock.recv(5)
            frames.append(frame)
            if frame["type"] == kind and (code is None or frame.get("code") == code):
                return

    await until("ai_joined")
    await sock.send_json_to({"type": "chat_message", "message": "what does this key do?"})
    await until("ai_stream_end")
    # The key is revoked at the provider, which now answers 401.
    settings.OPENAI_API_KEY = revoked_key
    reset_clients()
    await sock.send_json_to({"type": "chat_message", "message": "are you there?"})
    await until("ai_error", "upstream_auth")

    # The flow really ran: two calls reached the provider, a reply came, the failure was logged.
    assert len(upstream.requests) == 2
    assert any(f["type"] == "chat_message" and f["is_ai"] for f in frames)
    assert "[AI_ERROR]" in caplog.text
    assert len(cookies) >= 2  # signed up, then signed in again: two sessions
    everything = {
        "logs": caplog.text + "".join(repr(vars(record)) for record in caplog.records),
        "answers": "\n".join(answers),
        "frames": "\n".join(json.dumps(f, ensure_ascii=False) for f in frames),
    }
    secret_values = {
        "good key": good_key,
        "revoked key": revoked_key,
        "password": password,
        "weak password": weak,
        "wrong password": wrong,
        **{f"session cookie {i}": value for i, value in enumerate(sorted(set(cookies)))},
    }
    for where, text in everything.items():
        for what, value in secret_values.items():
            assert value not in text, f"the {what} appears in the {where}"
