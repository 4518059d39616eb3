"""Prometheus metrics: the objects, the small typed API the rest of the code records through,
and the exposition that `/metrics` serves.

Code elsewhere calls the functions below, never the metric objects, so that label names and
values stay in one place and a typo cannot create a new series.

With several uvicorn worker processes each process counts on its own; when the environment
variable PROMETHEUS_MULTIPROC_DIR names a directory (before this module is first imported,
which `deploy/container.sh start` arranges), prometheus_client writes every process's values
there and `/metrics` adds them up, whichever worker answers the scrape.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

MessageKind = Literal["room", "ai_session", "ai_reply"]
RefusalReason = Literal["rate_limited", "budget_exceeded"]

# --- sockets ----------------------------------------------------------------------------------
# "livesum": with several processes, the sum over the processes still running, so a worker
# that died does not leave its sockets counted forever.
OPEN_SOCKETS = Gauge(
    "chat_open_sockets",
    "WebSocket connections open now, by route (chat, llm, me).",
    ["route"],
    multiprocess_mode="livesum",
)
SOCKET_ERRORS = Counter(
    "chat_socket_errors",
    "Error frames sent on WebSockets, by error code.",
    ["code"],
)
SOCKET_CLOSES = Counter(
    "chat_socket_closes",
    "WebSockets closed by the server, by close code (4401, 4403, 4404, 4410, 1009, 1013...).",
    ["code"],
)

# --- messages and HTTP ------------------------------------------------------------------------
MESSAGES = Counter(
    "chat_messages",
    "Messages saved, by kind: room chat, a person's message in an AI session, an AI reply.",
    ["kind"],
)
HTTP_ERRORS = Counter(
    "chat_http_errors",
    "HTTP answers with status 400 or above, by status and the envelope's error code.",
    ["status", "code"],
)

# --- the AI assistant -------------------------------------------------------------------------
AI_REQUESTS = Counter(
    "chat_ai_requests",
    "Provider requests, by model and outcome (ok, stopped, or the ai_error code).",
    ["model", "outcome"],
)
AI_TOKENS = Counter(
    "chat_ai_tokens",
    "Tokens reported by the provider, by model and kind (prompt, completion).",
    ["model", "kind"],
)
AI_USAGE_UNKNOWN = Counter(
    "chat_ai_usage_unknown",
    "Provider requests whose token usage was not reported (e.g. an interrupted stream).",
    ["model"],
)
AI_COST = Counter(
    "chat_ai_cost_usd",
    "Cost of provider requests in US dollars, by model.",
    ["model"],
)
AI_TIME_TO_FIRST_TOKEN = Histogram(
    "chat_ai_time_to_first_token_seconds",
    "From the request to the provider until the first token of the reply, by model.",
    ["model"],
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 60),
)
AI_REPLY_LATENCY = Histogram(
    "chat_ai_reply_latency_seconds",
    "From the person's message until the complete reply was saved, by model.",
    ["model"],
    buckets=(0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120, 180),
)
AI_REFUSALS = Counter(
    "chat_ai_refusals",
    "AI requests refused before reaching the provider, by reason.",
    ["reason"],
)


# --- recording API ----------------------------------------------------------------------------
def socket_opened(route: str) -> None:
    OPEN_SOCKETS.labels(route=route).inc()


def socket_closed(route: str) -> None:
    OPEN_SOCKETS.labels(route=route).dec()


def record_socket_error(code: str) -> None:
    SOCKET_ERRORS.labels(code=code).inc()


def record_socket_close(code: int) -> None:
    SOCKET_CLOSES.labels(code=str(code)).inc()


def record_message(kind: MessageKind) -> None:
    MESSAGES.labels(kind=kind).inc()


def record_http_error(status: int, code: str) -> None:
    HTTP_ERRORS.labels(status=str(status), code=code).inc()


def record_ai_request(model: str, outcome: str) -> None:
    """One provider request finished: `outcome` is "ok", "stopped" or the ai_error code
    (upstream_auth, upstream_rate_limited, upstream_timeout, upstream_unavailable...)."""
    AI_REQUESTS.labels(model=model, outcome=outcome).inc()


def add_tokens(model: str, prompt: int | None, completion: int | None) -> None:
    """The provider's own token counts; None where it reported none (counted as unknown, not
    as zero)."""
    if prompt is None or completion is None:
        AI_USAGE_UNKNOWN.labels(model=model).inc()
    if prompt is not None:
        AI_TOKENS.labels(model=model, kind="prompt").inc(prompt)
    if completion is not None:
        AI_TOKENS.labels(model=model, kind="completion").inc(completion)


def add_cost(model: str, usd: Decimal | float | None) -> None:
    if usd is not None:
        AI_COST.labels(model=model).inc(float(usd))


def observe_ttft(model: str, seconds: float) -> None:
    AI_TIME_TO_FIRST_TOKEN.labels(model=model).observe(seconds)


def observe_reply_latency(model: str, seconds: float) -> None:
    AI_REPLY_LATENCY.labels(model=model).observe(seconds)


def record_refusal(reason: RefusalReason) -> None:
    AI_REFUSALS.labels(reason=reason).inc()


# --- exposition -------------------------------------------------------------------------------
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def forget_dead_processes(directory: str) -> None:
    """Drop the live gauges of worker processes that have exited.

    uvicorn restarts a worker that dies without telling anyone, so there is no hook to call
    `mark_process_dead` from; checking at scrape time keeps open-socket counts honest.
    """
    for path in Path(directory).glob("gauge_live*_*.db"):
        match = _LIVE_GAUGE_FILE.match(path.name)
        if match and not _process_alive(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), directory)  # type: ignore[no-untyped-call]


def exposition(multiproc_dir: str = "") -> bytes:
    """The metrics in Prometheus text format: this process's, or with `multiproc_dir`, every
    worker's added up."""
    if not multiproc_dir:
        return generate_latest(REGISTRY)
    forget_dead_processes(multiproc_dir)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiproc_dir)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
