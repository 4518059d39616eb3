"""The admin's sign-in page goes through the same throttled sign-in as the API."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.test import Client

from accounts.models import User

pytestmark = pytest.mark.django_db

STRONG = "Correct-Horse-42"
ATTACKER = "203.0.113.9"


def admin_login(client: Client, username: str, password: str, address: str = ATTACKER):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


def signed_in(client: Client) -> bool:
    return django_settings.SESSION_COOKIE_NAME in client.cookies and (
        "_auth_user_id" in client.session
    )


def test_admin_sign_in_works(make_user):
    make_user("root7", is_staff=True)
    c = Client()
    r = admin_login(c, "root7", STRONG)
    assert r.status_code == 302
    assert r["Location"] == "/admin/"
    assert signed_in(c)


def test_twenty_five_wrong_passwords_then_the_right_one_do_not_sign_in(make_user):
    make_user("root7", is_staff=True)
    c = Client()
    for _ in range(25):
        assert admin_login(c, "root7", "wrong-password").status_code == 200
    r = admin_login(c, "root7", STRONG)
    assert r.status_code == 200
    assert "Too many failed sign-ins" in r.content.decode()
    assert not signed_in(c)


def test_admin_and_api_failures_are_counted_together(anon, make_user, settings):
    settings.LOGIN_FAILURE_RATE_PER_ADDRESS = "4/minute"
    make_user("root7", is_staff=True)
    for i in range(4):
        assert admin_login(Client(), f"nobody{i}", "wrong").status_code == 200
    r = anon.post_json(
        "/api/auth/login/", {"username": "root7", "password": STRONG}, REMOTE_ADDR=ATTACKER
    )
    assert r.status_code == 429


def test_the_owner_signs_in_to_the_admin_while_another_address_is_refused(make_user):
    make_user("root7", is_staff=True)
    for _ in range(6):
        admin_login(Client(), "root7", "wrong-password")
    owner = Client()
    r = admin_login(owner, "root7", STRONG, address="198.51.100.20")
    assert r.status_code == 302
    assert signed_in(owner)


def test_a_look_alike_name_does_not_open_the_admin(make_user):
    make_user("kim734f3", is_staff=True)
    c = Client()
    assert admin_login(c, "kım734f3", STRONG).status_code == 200
    assert not signed_in(c)


def test_the_admin_refuses_a_second_spelling_of_an_existing_name(client_for, make_user):
    """'STRASSE' and 'Straße' differ in lower case but share a key: a form error, not the
    unique index's 500."""
    admin = client_for(make_user("root7", is_staff=True, is_superuser=True))
    make_user("Straße")
    r = admin.post(
        "/admin/accounts/user/add/",
        {
            "username": "STRASSE",
            "password1": STRONG,
            "password2": STRONG,
            "usable_password": "true",
        },
    )
    assert r.status_code == 200
    assert "already exists" in r.content.decode()
    assert not User.objects.filter(username="STRASSE").exists()
