"""The two outermost middlewares.

`RequestTrackingMiddleware` gives every request an id (the caller's `X-Request-ID` when it is
a sane one, as a proxy sets it, else a new one), puts it in the log context and on the answer,
and counts error answers by status and error code.

`ProbeMiddleware` answers `/healthz`, `/readyz` and scrapes of `/metrics` that carry a bearer
token before any other middleware: a load balancer, Docker or Prometheus reaches the container
by an address that is not in ALLOWED_HOSTS and over plain HTTP, which host validation and
SECURE_SSL_REDIRECT would otherwise refuse or redirect. Staff requests with a session cookie go
the normal way (they need the session and the host check; /readyz shows staff its details).

Both are async: under uvicorn the probes run on the event loop, without waiting for the thread
that the rest of the (sync) chain runs in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from uuid import uuid4

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from core import metrics
from core.errors import STATUS_CODES
from core.logs import reset_log_context, set_log_context
from ops import views

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_SANE_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_MAX_INSPECTED_BODY = 64 * 1024

GetResponse = Callable[[HttpRequest], Any]
View = Callable[[HttpRequest], Any]


class _AsyncMiddleware:
    """Async-only: under uvicorn it runs on the event loop and Django moves the (sync) rest of
    the chain to a thread after it; Django's test client runs it through async_to_sync."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)  # type: ignore[type-var]


def error_code(response: HttpResponseBase) -> str:
    """The envelope's `code` of an error answer, or the usual one for its status."""
    fallback = STATUS_CODES.get(response.status_code, "error")
    if response.streaming or not response.get("Content-Type", "").startswith("application/json"):
        return fallback
    content: bytes = getattr(response, "content", b"")
    if len(content) > _MAX_INSPECTED_BODY:
        return fallback
    try:
        body = json.loads(content)
    except ValueError:
        return fallback
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) and _SANE_CODE.match(code) else fallback


class RequestTrackingMiddleware(_AsyncMiddleware):
    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid4().hex
        # Also kept on the request: Django logs failed requests ("Not Found: ...") after the
        # middlewares have returned, and the log formatters find the id there.
        request.request_id = request_id  # type: ignore[attr-defined]
        token = set_log_context(request_id=request_id)
        try:
            response: HttpResponseBase = await self.get_response(request)
        finally:
            reset_log_context(token)
        response[REQUEST_ID_HEADER] = request_id
        if response.status_code >= 400:
            metrics.record_http_error(response.status_code, error_code(response))
        return response


def early_view(request: HttpRequest) -> View | None:
    """The view that answers this request ahead of the other middlewares, if any."""
    if request.path == "/healthz":
        return views.healthz
    if request.path == "/readyz" and (
        views.bearer_token(request) is not None
        or settings.SESSION_COOKIE_NAME not in request.COOKIES
    ):
        return views.readyz
    if request.path == "/metrics" and views.bearer_token(request) is not None:
        return views.metrics
    return None


class ProbeMiddleware(_AsyncMiddleware):
    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        view = early_view(request)
        if view is None:
            response: HttpResponseBase = await self.get_response(request)
            return response
        if iscoroutinefunction(view):
            answer: HttpResponseBase = await view(request)
            return answer
        # Collecting metrics reads files (one per worker process): not on the event loop.
        return await sync_to_async(view, thread_sensitive=False)(request)  # type: ignore[no-any-return]
