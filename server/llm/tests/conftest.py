from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chat.services import room_create
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
def room(alice, bob):
    """alice's room "devs", with bob in it."""
    room = room_create(owner=alice, name="devs")
    room.participants.add(bob)
    return room
