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
