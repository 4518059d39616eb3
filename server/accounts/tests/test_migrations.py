"""Accounts made before usernames had a normalised key still sign in after the migration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("accounts", "0001_initial")
STRONG = "Correct-Horse-42"


@pytest.fixture
def old_schema() -> Iterator[type]:
    """The User model as it was before the key, on a database migrated back to it; the
    database is migrated forward again afterwards."""
    call_command("migrate", *BEFORE, verbosity=0)
    state = MigrationExecutor(connection).loader.project_state(BEFORE)
    model = state.apps.get_model("accounts", "User")
    try:
        yield model
    finally:
        if not _migrated():  # a test stopped the migration: its rows would stop it again
            model.objects.all().delete()
        call_command("migrate", "accounts", verbosity=0)


def _migrated() -> bool:
    executor = MigrationExecutor(connection)
    return not executor.migration_plan(executor.loader.graph.leaf_nodes())


def test_an_existing_account_signs_in_after_the_migration(old_schema, anon):
    old_schema.objects.create(username="Ｈana", password=make_password(STRONG))
    call_command("migrate", "accounts", verbosity=0)
    r = anon.post_json("/api/auth/login/", {"username": "hana", "password": STRONG})
    assert r.status_code == 200, r.json()
    assert r.json()["user"]["username"] == "Ｈana"


def test_names_that_would_become_one_stop_the_migration_with_their_names(old_schema):
    old_schema.objects.create(username="Straße", password="!")
    old_schema.objects.create(username="STRASSE", password="!")
    with pytest.raises(RuntimeError, match="'Straße' and 'STRASSE'"):
        call_command("migrate", "accounts", verbosity=0)
