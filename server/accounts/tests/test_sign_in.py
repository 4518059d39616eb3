"""Sign-in: one normalised name for look-up and throttling, failures that cannot lock the owner
out, and a password hash computed whether or not the account exists."""

from __future__ import annotations

import pytest

from accounts.tests.hashers import CountingHasher

pytestmark = pytest.mark.django_db

STRONG = "Correct-Horse-42"
ATTACKER = "203.0.113.9"
OWNER = "198.51.100.20"


def login(client, username, password, address="127.0.0.1"):
    return client.post_json(
        "/api/auth/login/", {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_a_look_alike_letter_does_not_sign_in_as_another_account(anon, make_user):
    """PostgreSQL's UPPER('ı') is 'I', so a case-insensitive look-up by the database took
    'kım734f3' (dotless ı) for 'kim734f3'. The name is compared in one normalised form, the
    same on every database."""
    make_user("kim734f3")
    r = login(anon, "kım734f3", STRONG)
    assert r.status_code == 401, r.json()
    assert anon.get("/api/auth/me/").status_code == 401


@pytest.mark.parametrize("spelling", ["kim734f3", "KIM734F3", " Kim734F3 ", "ｋｉｍ734ｆ3"])
def test_every_spelling_of_the_same_normalised_name_signs_in(anon, make_user, spelling):
    """Case and compatibility forms (full-width letters, NFKC) are the same name."""
    user = make_user("kim734f3")
    r = login(anon, spelling, STRONG)
    assert r.status_code == 200, r.json()
    assert r.json()["user"] == {"id": user.pk, "username": "kim734f3"}


def test_spellings_of_one_name_share_its_throttle(anon, make_user, settings):
    settings.LOGIN_FAILURE_RATE_PER_ACCOUNT = "3/minute"
    make_user("victimae47")
    for spelling in ("VICTIMAE47", "ｖｉｃｔｉｍａｅ47", "victimae47"):
        assert login(anon, spelling, "wrong").status_code == 401
    r = login(anon, "victimae47", STRONG)
    assert r.status_code == 429, r.json()
    # A look-alike is another name: its own throttle key, and it matches no account.
    assert login(anon, "victımae47", STRONG).status_code == 401


def test_failures_from_one_address_do_not_lock_the_owner_out(anon, client_for, alice, settings):
    settings.LOGIN_FAILURE_RATE_PER_ACCOUNT = "5/15minute"
    for _ in range(5):
        assert login(anon, "alice", "wrong", ATTACKER).status_code == 401
    # The attacking address is refused from now on, even with the right password...
    refused = login(anon, "alice", STRONG, ATTACKER)
    assert refused.status_code == 429
    assert refused.json()["retry_after"] >= 1
    # ...while the owner, from an address that has not failed, signs in.
    owner = client_for(None)
    r = login(owner, "alice", STRONG, OWNER)
    assert r.status_code == 200, r.json()
    assert owner.get("/api/auth/me/").json()["user"]["username"] == "alice"


def test_an_account_under_attack_gives_each_address_one_guess(anon, alice, settings):
    """Past the account's limit, spreading the guesses over many addresses buys one guess per
    address: an address that failed on the account is refused, the right password included."""
    settings.LOGIN_FAILURE_RATE_PER_ACCOUNT = "3/15minute"
    for i in range(3):
        assert login(anon, "alice", "wrong", f"203.0.113.{i}").status_code == 401
    fresh = "203.0.113.50"
    assert login(anon, "alice", "still-wrong", fresh).status_code == 401
    assert login(anon, "alice", STRONG, fresh).status_code == 429
    assert login(anon, "alice", STRONG, "203.0.113.0").status_code == 429


def test_failures_on_other_accounts_do_not_guard_this_one(anon, make_user, alice, settings):
    settings.LOGIN_FAILURE_RATE_PER_ACCOUNT = "2/15minute"
    make_user("bob")
    for _ in range(2):
        assert login(anon, "bob", "wrong", ATTACKER).status_code == 401
    assert login(anon, "alice", STRONG, ATTACKER).status_code == 200


def test_the_address_limit_counts_every_account(anon, settings):
    settings.LOGIN_FAILURE_RATE_PER_ADDRESS = "3/minute"
    for name in ("nobody1", "nobody2", "nobody3"):
        assert login(anon, name, "wrong", ATTACKER).status_code == 401
    assert login(anon, "nobody4", "wrong", ATTACKER).status_code == 429
    assert login(anon, "nobody4", "wrong", OWNER).status_code == 401


def test_signing_in_as_nobody_computes_a_password_hash(anon, alice, settings):
    """An unknown name must cost what a known one costs, or the answer's timing tells which
    names exist. Counted through the hasher rather than timed."""
    settings.PASSWORD_HASHERS = ["accounts.tests.hashers.CountingHasher"]
    from accounts.services import assistant_user

    assistant_user()
    computed = {}
    for name in ("alice", "nobody-at-all", settings.AI_USERNAME):
        CountingHasher.computed = 0
        assert login(anon, name, "wrong-password").status_code == 401
        computed[name] = CountingHasher.computed
    assert computed == {"alice": 1, "nobody-at-all": 1, settings.AI_USERNAME: 1}
