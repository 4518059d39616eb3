from __future__ import annotations

import pytest
from django.conf import settings

from accounts.models import User

pytestmark = pytest.mark.django_db

STRONG = "Correct-Horse-42"


def test_signup_creates_account_and_signs_in(anon):
    r = anon.post_json("/api/auth/signup/", {"username": "dana", "password": STRONG})
    assert r.status_code == 201
    body = r.json()
    assert body["result"] == "success"
    assert body["user"]["username"] == "dana"
    assert isinstance(body["user"]["id"], int)
    me = anon.get("/api/auth/me/")
    assert me.status_code == 200
    assert me.json() == {"result": "success", "user": body["user"]}


@pytest.mark.parametrize("name", ["AI_Assistant", "ai_assistant", " AI_ASSISTANT "])
def test_signup_refuses_the_assistants_name(anon, name):
    r = anon.post_json("/api/auth/signup/", {"username": name, "password": STRONG})
    assert r.status_code == 400
    assert r.json()["code"] == "validation_error"
    assert not User.objects.filter(username__iexact=name.strip()).exists()


def test_signup_runs_password_validators(anon):
    r = anon.post_json("/api/auth/signup/", {"username": "dana", "password": "123"})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "validation_error"
    assert body["message"].startswith("password:")


def test_signup_refuses_a_taken_name_ignoring_case(anon, alice):
    r = anon.post_json("/api/auth/signup/", {"username": "ALICE", "password": STRONG})
    assert r.status_code == 400
    assert "taken" in r.json()["message"]


@pytest.mark.parametrize("body", [{}, {"username": "x"}, {"username": 3, "password": []}])
def test_signup_validation_errors(anon, body):
    r = anon.post_json("/api/auth/signup/", body)
    assert r.status_code == 400
    assert r.json()["code"] == "validation_error"


def test_login_and_logout(anon, alice):
    r = anon.post_json("/api/auth/login/", {"username": "alice", "password": STRONG})
    assert r.status_code == 200
    assert r.json()["user"]["username"] == "alice"
    assert anon.get("/api/auth/me/").status_code == 200
    assert anon.post_json("/api/auth/logout/").json() == {"result": "success"}
    r = anon.get("/api/auth/me/")
    assert r.status_code == 401
    assert r.json()["code"] == "not_authenticated"


def test_login_wrong_password(anon, alice):
    r = anon.post_json("/api/auth/login/", {"username": "alice", "password": "nope"})
    assert r.status_code == 401
    assert r.json() == {
        "result": "error",
        "code": "invalid_credentials",
        "message": r.json()["message"],
    }


def test_the_assistant_cannot_sign_in(anon):
    from accounts.services import assistant_user

    ai = assistant_user()
    assert not ai.has_usable_password()
    r = anon.post_json("/api/auth/login/", {"username": settings.AI_USERNAME, "password": ""})
    assert r.status_code == 401


def test_failed_logins_are_throttled_per_account(anon, alice, settings):
    settings.LOGIN_FAILURE_RATE_PER_ACCOUNT = "3/minute"
    for _ in range(3):
        assert (
            anon.post_json("/api/auth/login/", {"username": "alice", "password": "x"}).status_code
            == 401
        )
    r = anon.post_json("/api/auth/login/", {"username": "alice", "password": STRONG})
    assert r.status_code == 429
    assert r.json()["code"] == "rate_limited"
    assert r.json()["retry_after"] >= 1


def test_failed_logins_are_throttled_per_address(anon, make_user, settings):
    settings.LOGIN_FAILURE_RATE_PER_ADDRESS = "4/minute"
    for i in range(4):
        make_user(f"u{i}")
        assert (
            anon.post_json("/api/auth/login/", {"username": f"u{i}", "password": "x"}).status_code
            == 401
        )
    r = anon.post_json("/api/auth/login/", {"username": "someone", "password": "x"})
    assert r.status_code == 429


def test_me_requires_sign_in(anon):
    r = anon.get("/api/auth/me/")
    assert r.status_code == 401
    assert r.json()["result"] == "error"


@pytest.mark.parametrize(
    ("username", "password", "field", "reasons"),
    [
        ("ALICE", STRONG, "username", ["taken"]),
        ("AI_Assistant", STRONG, "username", ["reserved"]),
        ("a1ice", STRONG, "username", ["lookalike"]),
        ("bad name!", STRONG, "username", ["invalid"]),
        ("dana", "12345678", "password", ["password_too_common", "password_entirely_numeric"]),
        ("dana", "short", "password", ["password_too_short"]),
    ],
)
def test_signup_says_why_a_field_was_refused(anon, alice, username, password, field, reasons):
    # Codes, so that a page can say it in its reader's language (issue 14).
    body = anon.post_json("/api/auth/signup/", {"username": username, "password": password}).json()
    assert body["code"] == "validation_error"
    assert body["field"] == field
    assert body["reasons"] == reasons
