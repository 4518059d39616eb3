from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from llm.generation import get_generator
from llm.providers.openai import reset_clients
from llm.tests.upstream import FakeUpstream


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


@pytest.fixture(autouse=True)
async def _replies_finish_within_the_test() -> AsyncIterator[None]:
    """A reply still being generated when a test ends would write into the next test's
    database; wait for it (or end it) first."""
    yield
    tasks = set(get_generator().tasks)
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=5)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)
