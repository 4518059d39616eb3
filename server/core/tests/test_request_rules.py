"""SPEC 3: the envelope on every answer, and the cross-site request rules."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from conftest import asgi_request, session_cookie

pytestmark = pytest.mark.django_db


def test_unknown_api_url_is_json_404(anon):
    r = anon.get("/api/does/not/exist/")
    assert r.status_code == 404
    assert r["Content-Type"].startswith("application/json")
    assert r.json()["result"] == "error"
    assert r.json()["code"] == "not_found"


def test_wrong_method_is_json_405(client_for, alice):
    r = client_for(alice).put("/api/chat/my-rooms/")
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed"


def test_invalid_json_body(client_for, alice):
    r = client_for(alice).post("/api/chat/rooms/", data="{nope", content_type="application/json")
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_json"


def test_deeply_nested_json_is_invalid_not_a_crash(client_for, alice):
    body = "[" * 100_000 + "]" * 100_000
    r = client_for(alice).post("/api/chat/rooms/", data=body, content_type="application/json")
    assert r.status_code in (400, 413)
    assert r.json()["result"] == "error"


def test_form_post_is_refused_with_415(client_for, alice):
    r = client_for(alice).post("/api/chat/rooms/", data={"name": "x"})
    assert r.status_code == 415
    assert r.json()["code"] == "unsupported_media_type"


def test_text_plain_post_is_refused(client_for, alice):
    r = client_for(alice).post("/api/chat/rooms/", data='{"name":"x"}', content_type="text/plain")
    assert r.status_code == 415


def test_foreign_origin_is_refused(client_for, alice):
    r = client_for(alice).post_json(
        "/api/chat/rooms/", {"name": "x"}, HTTP_ORIGIN="https://evil.example"
    )
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"


def test_own_origin_passes(client_for, alice):
    r = client_for(alice).post_json(
        "/api/chat/rooms/", {"name": "x"}, HTTP_ORIGIN="http://testserver"
    )
    assert r.status_code == 201


def test_configured_front_end_origin_passes_with_cors(client_for, alice, settings):
    settings.CORS_ALLOWED_ORIGINS = ["http://localhost:5173"]
    c = client_for(alice)
    r = c.post_json("/api/chat/rooms/", {"name": "x"}, HTTP_ORIGIN="http://localhost:5173")
    assert r.status_code == 201
    assert r["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert r["Access-Control-Allow-Credentials"] == "true"


def test_seed_style_post_without_csrf_token_works(alice):
    from conftest import ApiClient

    c = ApiClient(enforce_csrf_checks=True)
    c.force_login(alice)
    r = c.post_json("/api/chat/rooms/", {"name": "x"})
    assert r.status_code == 201


@pytest.mark.django_db(transaction=True)
async def test_too_large_body(alice):
    cookie = await sync_to_async(session_cookie)(alice)
    body = ('{"name":"' + "x" * 70_000 + '"}').encode()
    status, answer = await asgi_request("POST", "/api/chat/rooms/", body, cookie=cookie)
    assert status == 413
    assert answer["code"] == "too_large"


def test_session_cookie_is_samesite_lax(anon):
    r = anon.post_json("/api/auth/signup/", {"username": "erin", "password": "Correct-Horse-42"})
    assert r.cookies["sessionid"]["samesite"] == "Lax"
    assert r.cookies["sessionid"]["httponly"]


def test_server_errors_are_json_without_traceback(client_for, alice, monkeypatch):
    from chat import selectors

    def boom(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(selectors, "room_views", boom)
    c = client_for(alice)
    c.raise_request_exception = False
    r = c.get("/api/chat/my-rooms/")
    assert r.status_code == 500
    assert r.json()["result"] == "error"
    assert "secret internals" not in r.content.decode()


def test_openapi_document_and_docs():
    from django.test import Client

    c = Client()
    doc = c.get("/api/openapi.json")
    assert doc.status_code == 200
    paths = doc.json()["paths"]
    for path in ("/api/auth/signup/", "/api/chat/my-rooms/", "/api/chat/rooms/{room_id}/messages/"):
        assert path in paths
    assert c.get("/api/docs").status_code == 200
