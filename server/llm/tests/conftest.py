from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llm.providers.openai import reset_clients
from testkit.upstream import FakeUpstream


@pytest.fixture
async def upstream(settings) -> AsyncIterator[FakeUpstream]:
    """A local OpenAI-compatible server, configured as the provider."""
    server = await FakeUpstream().start()
    settings.LLM_PROVIDER = "openai"
    settings.OPENAI_API_KEY = server.api_key
    settings.OPENAI_BASE_URL = server.base_url
    settings.LLM_MODEL = "gpt-4o-mini"
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_TIMEOUT_SECONDS = 2
    reset_clients()
    yield server
    reset_clients()
    await server.stop()


@pytest.fixture
def presets(db: None) -> None:
    """The persona presets a migration installs (SPEC 10.1), installed again: a test that
    flushes the database (transaction=True) takes them with it. Found by the migration's own
    function, so the test follows the migration whatever its number."""
    from django.apps import apps
    from django.db import connection
    from django.db.migrations import RunPython
    from django.db.migrations.loader import MigrationLoader

    for (app, _), migration in MigrationLoader(connection).disk_migrations.items():
        for operation in migration.operations if app == "llm" else ():
            if isinstance(operation, RunPython) and operation.code.__name__ == "add_presets":
                operation.code(apps, None)
                return
    raise AssertionError("no migration of llm installs the persona presets")
