"""Usernames at sign-up: NFKC-normalised, and refused when confusable (Unicode TR39 skeleton)
with the assistant's name or an existing user's; sign-ups throttled per client address."""

from __future__ import annotations

import pytest

from accounts.models import User

pytestmark = pytest.mark.django_db

STRONG = "Correct-Horse-42"


def signup(client, username, address="127.0.0.1", password=STRONG):
    return client.post_json(
        "/api/auth/signup/", {"username": username, "password": password}, REMOTE_ADDR=address
    )


@pytest.mark.parametrize(
    "name",
    [
        "ＡＩ_Assistant",  # full-width Latin letters
        "AI_Assіstant",  # Cyrillic і
        "ΑΙ_Assistant",  # Greek capital alpha and iota
        "Al_Assistant",  # lower-case L for the capital I
        "AI_Assistant",
    ],
)
def test_names_confusable_with_the_assistant_are_refused(anon, name):
    r = signup(anon, name)
    assert r.status_code == 400, r.json()
    assert r.json()["code"] == "validation_error"
    assert r.json()["message"].startswith("username:")
    assert not User.objects.exclude(username="AI_Assistant").exists()


@pytest.mark.parametrize(
    "name",
    [
        "аlice",  # Cyrillic а
        "ａｌｉｃｅ",  # full-width: NFKC makes it "alice"
        "ALICE",
        "a1ice",  # digit one for the l
    ],
)
def test_names_confusable_with_an_existing_user_are_refused(anon, alice, name):
    r = signup(anon, name)
    assert r.status_code == 400, r.json()
    assert r.json()["message"].startswith("username:")
    assert User.objects.count() == 1


def test_a_name_is_stored_in_its_nfkc_form(anon):
    r = signup(anon, "ｄａｎａ")
    assert r.status_code == 201, r.json()
    assert r.json()["user"]["username"] == "dana"
    assert User.objects.get().username == "dana"


def test_names_that_only_look_different_from_nothing_are_accepted(anon, alice):
    for name in ("한글이름", "Ölaf", "Kirn"):
        assert signup(anon, name).status_code == 201, name


def test_signups_are_throttled_per_address(anon, client_for, settings):
    settings.SIGNUP_RATE_PER_ADDRESS = "3/hour"
    for i in range(3):
        assert signup(client_for(None), f"newcomer{i}", "203.0.113.9").status_code == 201
    r = signup(client_for(None), "newcomer3", "203.0.113.9")
    assert r.status_code == 429
    assert r.json()["code"] == "rate_limited"
    assert r.json()["retry_after"] >= 1
    assert not User.objects.filter(username="newcomer3").exists()
    assert signup(client_for(None), "newcomer3", "198.51.100.20").status_code == 201


def test_probing_for_taken_names_counts_against_the_signup_limit(anon, alice, settings):
    settings.SIGNUP_RATE_PER_ADDRESS = "3/hour"
    for _ in range(3):
        assert signup(anon, "alice", "203.0.113.9").status_code == 400
    assert signup(anon, "alice", "203.0.113.9").status_code == 429
