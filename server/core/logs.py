"""Log formats and the ids that tie a log line to a request or an AI session.

`LOG_FORMAT=plain` (the default) writes `time LEVEL logger message` and, when known, the ids
after the message; `LOG_FORMAT=json` writes one JSON object per line. Either way the message is
kept whole, so a line logged as "[AI_DEBUG] ..." still has the prefix at the start of its
message and `grep "\\[AI_"` finds it.

The ids live in a context variable: `RequestTrackingMiddleware` sets `request_id` for each HTTP
request, and any code may add its own for the work it does::

    with log_context(session_id=session.pk, room_id=session.room_id):
        ...  # every line logged here, also from tasks started here, carries both ids

Context variables follow asyncio tasks (a task copies its creator's context) and asgiref's
sync/async bridges, so the ids reach ORM work in worker threads as well.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar("log_context", default=_EMPTY)

# Attributes every LogRecord has; anything else on a record came from `extra=`. Also left
# out: uvicorn's copy of the message with terminal colours, and Django's request object.
_LEFT_OUT = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName", "log_ids", "color_message", "request"}
)


def get_log_context() -> Mapping[str, str]:
    """The ids in force here (read-only)."""
    return _context.get()


def set_log_context(**ids: object) -> Token[Mapping[str, str]]:
    """Add ids to the current context (None removes one). Returns a token for
    `reset_log_context`; in a task or a consumer that owns its context, it may be dropped."""
    merged = dict(_context.get())
    for key, value in ids.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return _context.set(MappingProxyType(merged))


def reset_log_context(token: Token[Mapping[str, str]]) -> None:
    _context.reset(token)


@contextmanager
def log_context(**ids: object) -> Iterator[None]:
    """The ids for the lines logged inside the block."""
    token = set_log_context(**ids)
    try:
        yield
    finally:
        _context.reset(token)


def record_ids(record: logging.LogRecord) -> dict[str, str]:
    """The ids for this record: the context's, or, for Django's lines about a failed request
    (logged once the middlewares, and so the request's context, are done), the request's."""
    ids = dict(_context.get())
    if "request_id" not in ids:
        request_id = getattr(getattr(record, "request", None), "request_id", None)
        if isinstance(request_id, str):
            ids["request_id"] = request_id
    return ids


class PlainFormatter(logging.Formatter):
    """`time LEVEL logger message key=value...`: the ids go after the message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s%(log_ids)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = record_ids(record)
        record.log_ids = "".join(f" {key}={value}" for key, value in ids.items())
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context ids, the fields
    passed with `extra=`, and the exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(record_ids(record))
        for key, value in record.__dict__.items():
            if key not in _LEFT_OUT and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


# uvicorn's access lines for what load balancers and Prometheus poll every few seconds.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class DropProbeAccessLines(logging.Filter):
    """Keeps health checks and scrapes out of uvicorn's access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn.access logs (client, method, path, http_version, status).
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            return args[2].split("?", 1)[0] not in PROBE_PATHS
        return True


# What uvicorn logs, with a traceback, about a client that broke the WebSocket protocol: the
# connection is closed (1007) and nothing of ours failed.
CLIENT_PROTOCOL_ERRORS = frozenset({"Invalid UTF-8 sequence received from client."})


class ClientProtocolErrorsAsWarnings(logging.Filter):
    """A client's malformed frame is one WARNING line without a traceback, not an ERROR: the
    connection it came on is closed with it, so a connection logs it once at most, and no
    client can fill the log with tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.error" and record.msg in CLIENT_PROTOCOL_ERRORS:
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
            record.exc_info = None
            record.exc_text = None
        return True
