"""/metrics: who may read it, what the code records, and several worker processes added up."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest
from channels.testing import WebsocketCommunicator
from prometheus_client import REGISTRY

from chat.conversations import Conversation
from chat.services import room_create
from core import closecodes, metrics
from core.ws import AppConsumer, Refused
from llm.services import message_post
from testkit.servers import child_env

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests-0123456789abcdef"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- access -----------------------------------------------------------------------------------
def test_anonymous_scrape_is_401_and_says_how(anon):
    r = anon.get("/metrics")
    assert r.status_code == 401
    assert r.json()["code"] == "not_authenticated"
    assert r["WWW-Authenticate"].startswith("Bearer")


def test_signed_in_non_staff_is_403(client_for, alice):
    assert client_for(alice).get("/metrics").status_code == 403


def test_staff_session_reads_the_metrics(client_for, make_user):
    staff = make_user("ops-staff", is_staff=True)
    r = client_for(staff).get("/metrics")
    assert r.status_code == 200
    assert r["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"# TYPE chat_open_sockets gauge" in r.content


@pytest.mark.parametrize(
    ("configured", "sent", "status"),
    [
        (TOKEN, TOKEN, 200),
        (TOKEN, TOKEN[:-1], 403),
        (TOKEN, "", 403),
        ("", "", 403),
        ("", "anything", 403),
    ],
)
def test_bearer_token(anon, settings, configured, sent, status):
    settings.METRICS_TOKEN = configured
    r = anon.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {sent}")
    assert r.status_code == status
    if status == 200:
        assert b"chat_http_errors_total" in r.content


def test_prometheus_reaches_the_container_by_any_host(anon, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.SECURE_SSL_REDIRECT = True
    r = anon.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", HTTP_HOST="web:8000")
    assert r.status_code == 200


def test_the_token_is_never_echoed(anon, settings):
    settings.METRICS_TOKEN = TOKEN
    r = anon.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-guess")
    assert TOKEN not in r.content.decode()
    assert "wrong-guess" not in r.content.decode()


# --- what is recorded -------------------------------------------------------------------------
def test_http_errors_are_counted_by_status_and_code(anon, client_for, alice):
    before_404 = value("chat_http_errors_total", status="404", code="not_found")
    before_415 = value("chat_http_errors_total", status="415", code="unsupported_media_type")
    anon.get("/api/no/such/endpoint/")
    client_for(alice).post("/api/chat/rooms/", data={"name": "x"})  # a form: 415
    anon.get("/no-such-page")  # Django's HTML 404
    assert value("chat_http_errors_total", status="404", code="not_found") == before_404 + 2
    assert (
        value("chat_http_errors_total", status="415", code="unsupported_media_type")
        == before_415 + 1
    )


def test_room_messages_are_counted_once_committed(alice, django_capture_on_commit_callbacks):
    room = room_create(owner=alice, name="metrics")
    before = value("chat_messages_total", kind="room")
    with django_capture_on_commit_callbacks(execute=True):
        post = {"conversation": Conversation(room_id=room.pk), "sender": alice, "text": "one"}
        message_post(**post, client_id="c1")
        # A retry of the same message is not a new message.
        message_post(**post, client_id="c1")
    assert value("chat_messages_total", kind="room") == before + 1


def test_ai_recording_api():
    model = "test-model-api"
    samples = [
        ("chat_ai_requests_total", {"model": model, "outcome": "ok"}),
        ("chat_ai_requests_total", {"model": model, "outcome": "upstream_timeout"}),
        ("chat_ai_tokens_total", {"model": model, "kind": "prompt"}),
        ("chat_ai_tokens_total", {"model": model, "kind": "completion"}),
        ("chat_ai_usage_unknown_total", {"model": model}),
        ("chat_ai_cost_usd_total", {"model": model}),
        ("chat_ai_time_to_first_token_seconds_count", {"model": model}),
        ("chat_ai_time_to_first_token_seconds_bucket", {"model": model, "le": "0.5"}),
        ("chat_ai_time_to_first_token_seconds_bucket", {"model": model, "le": "0.25"}),
        ("chat_ai_reply_latency_seconds_sum", {"model": model}),
        ("chat_ai_refusals_total", {"reason": "rate_limited"}),
        ("chat_ai_refusals_total", {"reason": "budget_exceeded"}),
    ]
    before = [value(name, **labels) for name, labels in samples]

    metrics.record_ai_request(model, "ok")
    metrics.record_ai_request(model, "upstream_timeout")
    metrics.add_tokens(model, 120, 30)
    metrics.add_tokens(model, 10, None)  # a stream that ended before its usage chunk
    metrics.add_cost(model, Decimal("0.00125"))
    metrics.add_cost(model, None)
    metrics.observe_ttft(model, 0.4)
    metrics.observe_reply_latency(model, 2.5)
    metrics.record_refusal("rate_limited")
    metrics.record_refusal("budget_exceeded")

    deltas = [value(name, **labels) - b for (name, labels), b in zip(samples, before, strict=True)]
    assert deltas == pytest.approx([1, 1, 130, 30, 1, 0.00125, 1, 1, 0, 2.5, 1, 1])


class ProbeConsumer(AppConsumer):
    """A socket of the shared base class, without a database: access is decided by its path."""

    frame_types = frozenset({"ping"})

    async def authorize(self) -> None:
        if self.scope["path"].endswith("/refuse/"):
            raise Refused(closecodes.FORBIDDEN)

    async def handle_ping(self, frame: dict[str, object]) -> None:
        self.send_frame({"type": "pong"})


async def probe_socket(path: str, user: object) -> WebsocketCommunicator:
    sock = WebsocketCommunicator(ProbeConsumer.as_asgi(), path)
    sock.scope["user"] = user
    connected, _ = await sock.connect(timeout=5)
    assert connected
    return sock


async def test_sockets_are_counted_while_open_and_errors_by_code(alice):
    before = value("chat_open_sockets", route="probe")
    errors_before = value("chat_socket_errors_total", code="unknown_type")
    sock = await probe_socket("/ws/probe/1/", alice)
    assert value("chat_open_sockets", route="probe") == before + 1
    await sock.send_json_to({"type": "dance"})
    assert (await sock.receive_json_from())["code"] == "unknown_type"
    await sock.send_json_to({"type": "ping"})
    assert await sock.receive_json_from() == {"seq": 2, "type": "pong"}
    assert value("chat_socket_errors_total", code="unknown_type") == errors_before + 1
    await sock.disconnect()
    assert value("chat_open_sockets", route="probe") == before


async def test_server_closes_are_counted_by_code(alice, ws):
    closes_4401 = value("chat_socket_closes_total", code="4401")
    closes_4403 = value("chat_socket_closes_total", code="4403")
    before = value("chat_open_sockets", route="probe")
    refused = await probe_socket("/ws/probe/refuse/", alice)
    assert (await refused.receive_output(3))["code"] == 4403
    await refused.disconnect()
    # Refused by the guard in front of every consumer: not signed in.
    anonymous = await ws(f"/ws/chat/{uuid4()}/", None)
    assert await anonymous.closed_with() == 4401
    assert value("chat_socket_closes_total", code="4403") == closes_4403 + 1
    assert value("chat_socket_closes_total", code="4401") == closes_4401 + 1
    assert value("chat_open_sockets", route="probe") == before


# --- several worker processes -----------------------------------------------------------------
WORKER = """
import sys
from core import metrics
metrics.socket_opened("chat")
metrics.record_message("room")
metrics.observe_ttft("m", 0.3)
if sys.argv[1] == "stay":
    print("ready", flush=True)
    sys.stdin.read()
"""


def _worker(directory: Path, mode: str) -> subprocess.Popen[str]:
    env = child_env(
        DJANGO_SETTINGS_MODULE="config.settings_test", PROMETHEUS_MULTIPROC_DIR=str(directory)
    )
    return subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", WORKER, mode],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_workers_are_added_up_and_exited_ones_forgotten(tmp_path, anon, settings):
    """Two workers count; one exits: counters keep its share, open sockets drop it."""
    exited = _worker(tmp_path, "exit")
    assert exited.wait(timeout=30) == 0
    alive = _worker(tmp_path, "stay")
    try:
        assert alive.stdout is not None
        assert alive.stdout.readline().strip() == "ready"
        settings.METRICS_TOKEN = TOKEN
        settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
        text = anon.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    finally:
        alive.communicate(timeout=30)
    assert 'chat_messages_total{kind="room"} 2.0' in text
    assert 'chat_ai_time_to_first_token_seconds_count{model="m"} 2.0' in text
    assert 'chat_open_sockets{route="chat"} 1.0' in text
    # Now neither is running.
    text = metrics.exposition(str(tmp_path)).decode()
    assert 'chat_messages_total{kind="room"} 2.0' in text
    assert 'chat_open_sockets{route="chat"}' not in text
