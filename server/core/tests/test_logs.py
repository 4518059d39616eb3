"""Log lines: plain or JSON, with the request's and the AI session's ids, the seed's prefixes
kept at the start of the message."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.logs import (
    DropProbeAccessLines,
    JsonFormatter,
    PlainFormatter,
    get_log_context,
    log_context,
    reset_log_context,
    set_log_context,
)

SERVER_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    """The lines of the `ops.test` logger, formatted when they are logged."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("ops.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield out, handler
    logger.removeHandler(handler)


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_json_line_keeps_the_ai_prefix_and_carries_the_ids(captured):
    out, handler = captured
    handler.setFormatter(JsonFormatter())
    with log_context(request_id="r-1", session_id="s-1"):
        logging.getLogger("ops.test").info(
            "[AI_DEBUG] calling provider %s for reply %s", "openai", 42, extra={"room_id": "x"}
        )
    entry = json.loads(lines(out)[0])
    assert entry["message"].startswith("[AI_DEBUG] ")
    assert entry["message"] == "[AI_DEBUG] calling provider openai for reply 42"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "ops.test"
    assert entry["request_id"] == "r-1"
    assert entry["session_id"] == "s-1"
    assert entry["room_id"] == "x"
    assert entry["time"].endswith("+00:00")


def test_json_line_is_one_line_with_the_traceback_and_korean_text(captured):
    out, handler = captured
    handler.setFormatter(JsonFormatter())
    try:
        raise ValueError("깨짐")
    except ValueError:
        logging.getLogger("ops.test").exception("[AI_ERROR] 응답 실패")
    [line] = lines(out)
    entry = json.loads(line)
    assert entry["message"] == "[AI_ERROR] 응답 실패"
    assert "ValueError: 깨짐" in entry["exception"]
    assert "응답" in line  # readable, not \\u-escaped


def test_plain_line_puts_the_ids_after_the_message(captured):
    out, handler = captured
    handler.setFormatter(PlainFormatter())
    logger = logging.getLogger("ops.test")
    logger.info("[AI_SUCCESS] no ids here")
    with log_context(session_id="abc"):
        logger.info("[AI_SUCCESS] reply saved")
    first, second = lines(out)
    assert first.endswith(" INFO ops.test [AI_SUCCESS] no ids here")
    assert second.endswith(" INFO ops.test [AI_SUCCESS] reply saved session_id=abc")


def test_context_nests_and_unwinds():
    assert "session_id" not in get_log_context()
    with log_context(session_id="a", room_id=1):
        with log_context(session_id="b", room_id=None):
            assert dict(get_log_context()) == {"session_id": "b"}
        assert dict(get_log_context()) == {"session_id": "a", "room_id": "1"}
    token = set_log_context(user_id=7)
    assert get_log_context()["user_id"] == "7"
    reset_log_context(token)
    assert "user_id" not in get_log_context()


async def test_a_task_started_in_a_context_keeps_its_ids():
    """A reply outlives the socket that asked for it, and keeps the session's ids."""

    async def later() -> str:
        await asyncio.sleep(0)
        return get_log_context().get("session_id", "")

    with log_context(session_id="s-9"):
        task = asyncio.create_task(later())
    assert await task == "s-9"


def test_each_request_gets_an_id_in_its_answer_and_its_log_lines(anon, captured, db):
    out, handler = captured
    handler.setFormatter(JsonFormatter())
    core_logger = logging.getLogger("core.middleware")
    core_logger.addHandler(handler)
    try:
        r = anon.post(
            "/api/chat/rooms/",
            data="{}",
            content_type="application/json",
            HTTP_ORIGIN="https://evil.example",
        )
    finally:
        core_logger.removeHandler(handler)
    assert r.status_code == 403
    request_id = r["X-Request-ID"]
    assert len(request_id) == 32
    [entry] = [json.loads(line) for line in lines(out)]
    assert entry["message"].startswith("Cross-site POST")
    assert entry["request_id"] == request_id
    assert "request_id" not in get_log_context()  # nothing leaks past the request


def test_failed_requests_are_logged_by_django_with_their_id(anon, captured, db):
    out, handler = captured
    handler.setFormatter(PlainFormatter())
    django_logger = logging.getLogger("django.request")
    django_logger.addHandler(handler)
    try:
        r = anon.get("/api/nothing/here/", HTTP_X_REQUEST_ID="lb-7f3a.1")
    finally:
        django_logger.removeHandler(handler)
    assert r["X-Request-ID"] == "lb-7f3a.1"
    [line] = lines(out)
    assert line.endswith("Not Found: /api/nothing/here/ request_id=lb-7f3a.1")


@pytest.mark.parametrize("incoming", ["has space", "x" * 129, "new\nline", "<script>"])
def test_an_odd_incoming_request_id_is_replaced(anon, incoming, db):
    r = anon.get("/healthz", HTTP_X_REQUEST_ID=incoming)
    assert r["X-Request-ID"] != incoming
    assert len(r["X-Request-ID"]) == 32


def test_probe_and_scrape_lines_are_left_out_of_the_access_log():
    drop = DropProbeAccessLines()

    def access(path: str) -> logging.LogRecord:
        args = ("10.0.0.2:5000", "GET", path, "1.1", 200)
        return logging.LogRecord("uvicorn.access", 20, "", 0, '%s - "%s %s HTTP/%s" %d', args, None)

    assert not drop.filter(access("/readyz"))
    assert not drop.filter(access("/metrics?x=1"))
    assert drop.filter(access("/api/auth/me/"))
    assert drop.filter(logging.LogRecord("uvicorn.access", 20, "", 0, "plain", None, None))


def test_log_format_json_writes_json_lines_on_stdout():
    """The settings' switch, end to end: a fresh process with LOG_FORMAT=json."""
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('llm').info('[AI_DEBUG] session %s opened', 'abc')"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "LOG_FORMAT": "json",
        "PYTHONPATH": str(SERVER_DIR),
    }
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout.strip().splitlines()[-1])
    assert entry["logger"] == "llm"
    assert entry["message"] == "[AI_DEBUG] session abc opened"
