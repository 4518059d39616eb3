"""/healthz and /readyz: what a load balancer and Docker's health check see, and the details
that only staff and the METRICS_TOKEN bearer see."""

from __future__ import annotations

import asyncio

import pytest
from django.db import OperationalError
from django.test import AsyncClient

from ops import health

pytestmark = pytest.mark.django_db

BROKEN_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1
TOKEN = "readiness-token-for-tests-0123456789abcdef"


@pytest.fixture(autouse=True)
def _metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN


async def get(path: str, **headers: str):
    return await AsyncClient().get(path, headers=headers)


async def detailed(path: str = "/readyz"):
    """/readyz as Prometheus or an operator's script reads it: with the bearer token."""
    return await get(path, Authorization=f"Bearer {TOKEN}")


def test_healthz_answers_without_touching_anything(anon, django_assert_num_queries):
    with django_assert_num_queries(0):
        r = anon.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"result": "success", "status": "ok"}
    assert r["Cache-Control"] == "no-store"


def test_probes_only_read(anon):
    r = anon.post("/healthz")
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed"
    assert r["Allow"] == "GET, HEAD"


async def test_readyz_checks_every_part(settings):
    settings.LLM_PROVIDER = "echo"
    r = await detailed()
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["result"] == "success"
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "channel_layer", "cache", "ai_provider"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["ai_provider"]["detail"] == "echo"


async def test_readyz_fails_when_the_ai_is_not_configured(settings):
    settings.DEBUG = False
    settings.LLM_PROVIDER = ""
    settings.OPENAI_API_KEY = ""
    r = await detailed()
    assert r.status_code == 503
    body = r.json()
    assert body["result"] == "error"
    assert body["code"] == "not_ready"
    assert body["failed"] == ["ai_provider"]
    assert "OPENAI_API_KEY" in body["checks"]["ai_provider"]["detail"]
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.parametrize(
    ("provider", "key", "debug", "ready"),
    [
        ("", "sk-test-key", False, "openai"),
        ("echo", "", False, "echo"),
        ("", "", True, "echo"),
        ("openai", "", True, None),
        ("claude", "sk-test-key", True, None),
    ],
)
async def test_ai_provider_check_follows_spec_7_1(settings, provider, key, debug, ready):
    settings.LLM_PROVIDER, settings.OPENAI_API_KEY, settings.DEBUG = provider, key, debug
    result = next(r for r in await health.readiness() if r.name == "ai_provider")
    assert result.ok is (ready is not None)
    if ready:
        assert result.detail == ready
    assert "sk-test-key" not in result.detail


async def test_readyz_names_a_broken_cache(settings):
    settings.LLM_PROVIDER = "echo"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": BROKEN_REDIS,
        }
    }
    r = await detailed()
    assert r.status_code == 503
    assert r.json()["failed"] == ["cache"]
    assert r.json()["checks"]["cache"]["detail"].startswith("failed (")


async def test_readyz_names_a_broken_channel_layer(settings):
    settings.LLM_PROVIDER = "echo"
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [BROKEN_REDIS]},
        }
    }
    r = await detailed()
    assert r.status_code == 503
    assert r.json()["failed"] == ["channel_layer"]


async def test_a_failure_shows_its_kind_but_not_its_text(settings, monkeypatch):
    settings.LLM_PROVIDER = "echo"

    def broken() -> None:
        raise OperationalError('connection to "db" failed: password=hunter2-secret')

    monkeypatch.setattr(health, "_database_ping", broken)
    r = await detailed()
    assert r.status_code == 503
    assert r.json()["failed"] == ["database"]
    assert r.json()["checks"]["database"]["detail"] == "failed (OperationalError)"
    assert "hunter2" not in r.content.decode()


async def test_a_hanging_part_is_reported_within_the_time_limit(settings, monkeypatch):
    settings.LLM_PROVIDER = "echo"

    async def hangs() -> str:
        await asyncio.sleep(30)
        return "never"

    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setitem(health.CHECKS, "cache", hangs)
    loop = asyncio.get_running_loop()
    started = loop.time()
    r = await detailed()
    assert loop.time() - started < 2
    assert r.status_code == 503
    assert r.json()["checks"]["cache"]["detail"] == "no answer within 0.2 s"


async def test_public_callers_get_the_status_alone(settings):
    settings.LLM_PROVIDER = "echo"
    r = await get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"result": "success", "status": "ready"}
    assert r["Cache-Control"] == "no-store"


async def test_public_callers_of_a_failing_probe_learn_nothing_but_that(settings):
    settings.DEBUG = False
    settings.LLM_PROVIDER = ""
    settings.OPENAI_API_KEY = ""
    r = await get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"result": "error", "code": "not_ready", "message": "Not ready."}


async def test_a_wrong_token_is_refused(settings):
    r = await get("/readyz", Authorization="Bearer not-the-token")
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"
    assert "checks" not in r.json()


def test_staff_see_the_details_and_other_users_do_not(client_for, make_user, settings):
    settings.LLM_PROVIDER = "echo"
    staff = client_for(make_user("ops1", is_staff=True)).get("/readyz")
    assert staff.status_code == 200
    assert staff.json()["checks"]["ai_provider"]["detail"] == "echo"
    member = client_for(make_user("member1")).get("/readyz")
    assert member.status_code == 200
    assert member.json() == {"result": "success", "status": "ready"}


def test_probes_answer_any_host_and_plain_http(anon, settings):
    """Docker and load balancers call the container by IP over HTTP: no 400, no redirect."""
    settings.SECURE_SSL_REDIRECT = True
    settings.LLM_PROVIDER = "echo"
    assert anon.get("/healthz", HTTP_HOST="10.0.3.7:8000").status_code == 200
    assert anon.get("/readyz", HTTP_HOST="10.0.3.7:8000").status_code == 200
    bearer = anon.get("/readyz", HTTP_HOST="10.0.3.7:8000", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert bearer.json()["checks"]["ai_provider"]["ok"] is True
    # ...while everything else still gets host validation and the redirect.
    assert anon.get("/api/auth/me/", HTTP_HOST="10.0.3.7:8000").status_code == 400
    assert anon.get("/api/auth/me/").status_code == 301


class Listener:
    """A hub subscriber that keeps what it is sent."""

    user_id = 0

    def __init__(self) -> None:
        self.received: asyncio.Queue[str] = asyncio.Queue()

    def deliver(self, text: str, meta: object = None) -> None:
        self.received.put_nowait(text)

    def control(self, action: str, params: dict[str, object]) -> None:
        pass


@pytest.mark.redis
async def test_readyz_round_trips_redis_while_the_hub_listens(settings):
    """The probe's receive shares the process's channel layer with the hub's, which is
    blocked in its own receive: both must get their messages."""
    from core.events import apublish, frame_event
    from core.hub import get_hub

    settings.LLM_PROVIDER = "echo"
    hub, listener = get_hub(), Listener()
    await hub.join("ops.readyz-test", listener)
    try:
        r = await detailed()
        assert r.status_code == 200, r.json()
        assert r.json()["checks"]["channel_layer"]["detail"].startswith("Redis")
        assert r.json()["checks"]["cache"]["detail"] == "RedisCache"
        await apublish(frame_event("ops.readyz-test", {"type": "probe"}))
        assert await asyncio.wait_for(listener.received.get(), 3) == '{"type":"probe"}'
    finally:
        await hub.leave("ops.readyz-test", listener)


async def test_the_probe_reuses_one_channel_and_skips_stale_messages(settings):
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    assert await health.check_channel_layer()
    channel = health._probe_channels[layer][1]
    # What a probe that timed out left behind must not confuse the next one.
    await layer.send(channel, {"type": "readyz.ping", "token": "stale"})
    for _ in range(3):
        assert await health.check_channel_layer()
    assert health._probe_channels[layer][1] == channel


@pytest.mark.redis
@pytest.mark.parametrize(
    "backend", ["channels_redis.core.RedisChannelLayer", "core.layers.RedisPubSubChannelLayer"]
)
async def test_the_probe_works_on_both_redis_layers(settings, backend):
    from channels.layers import get_channel_layer

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": backend,
            "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": "ops-probe-test"},
        }
    }
    layer = get_channel_layer()
    for _ in range(3):
        assert await health.check_channel_layer() == backend.rsplit(".", 1)[1]
    if hasattr(layer, "channels"):  # the pub/sub layer: one subscription, however many probes
        assert len(layer.channels) == 1
    await layer.flush()
