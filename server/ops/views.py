"""/healthz, /readyz and /metrics.

- `/healthz`: the process answers (a liveness probe; it touches nothing else).
- `/readyz`: the database, the channel layer, the cache and the AI provider's configuration
  all work (200), or not (503): the status alone for anyone (a load balancer's health check),
  each part's result for a METRICS_TOKEN bearer or signed-in staff. The details name the
  database vendor, the layer class and the provider, which is no one else's business.
- `/metrics`: Prometheus text format, for a bearer token equal to METRICS_TOKEN or a signed-in
  staff user.

`ops.middleware.ProbeMiddleware` answers the two probes (and token-bearing requests) before
host validation and the HTTPS redirect; the URLs below serve them otherwise (a staff
session's request needs the session, so it goes the normal way).
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from core import metrics as metrics_module
from core.errors import AppError, Forbidden, MethodNotAllowed, NotAuthenticated
from ops import health

READ_METHODS = ("GET", "HEAD")


def _refuse(error: AppError, **headers: str) -> JsonResponse:
    response = JsonResponse(error.payload(), status=error.status)
    for name, value in headers.items():
        response[name] = value
    return response


def _wrong_method(request: HttpRequest) -> JsonResponse | None:
    if request.method in READ_METHODS:
        return None
    return _refuse(MethodNotAllowed(), Allow=", ".join(READ_METHODS))


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


async def healthz(request: HttpRequest) -> HttpResponse:
    refusal = _wrong_method(request)
    if refusal is not None:
        return refusal
    return _no_store(JsonResponse({"result": "success", "status": "ok"}))


async def readyz(request: HttpRequest) -> HttpResponse:
    refusal = _wrong_method(request)
    if refusal is not None:
        return refusal
    token = _token_verdict(request)
    if token is False:
        return _refuse(Forbidden("This token may not read the readiness details."))
    detailed = token is True or await _is_staff(request)
    results = await health.readiness()
    failed = [r.name for r in results if not r.ok]
    body: dict[str, object] = (
        {"result": "success", "status": "ready"}
        if not failed
        else {"result": "error", "code": "not_ready", "message": "Not ready."}
    )
    if detailed:
        if failed:
            body["message"] = f"Not ready: {', '.join(failed)}."
            body["failed"] = failed
        body["checks"] = {r.name: {"ok": r.ok, "detail": r.detail, "ms": r.ms} for r in results}
    return _no_store(JsonResponse(body, status=503 if failed else 200))


async def _is_staff(request: HttpRequest) -> bool:
    # Answered ahead of the session middleware (a probe without a session cookie), a request
    # has no user; it is then no one's.
    auser = getattr(request, "auser", None)
    if auser is None:
        return False
    user = await auser()
    return bool(user.is_authenticated and user.is_staff)


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if the request has one."""
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _token_verdict(request: HttpRequest) -> bool | None:
    """True for a bearer token equal to METRICS_TOKEN, False for another, None for none."""
    token = bearer_token(request)
    if token is None:
        return None
    expected = settings.METRICS_TOKEN
    return bool(expected) and hmac.compare_digest(token.encode(), expected.encode())


def _metrics_refusal(request: HttpRequest) -> JsonResponse | None:
    token = _token_verdict(request)
    if token is True:
        return None
    if token is False:
        return _refuse(Forbidden("This token may not read the metrics."))
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return _refuse(
            NotAuthenticated("Send Authorization: Bearer <METRICS_TOKEN>, or sign in as staff."),
            **{"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    if not user.is_staff:
        return _refuse(Forbidden("Only staff may read the metrics."))
    return None


def metrics(request: HttpRequest) -> HttpResponse:
    refusal = _wrong_method(request) or _metrics_refusal(request)
    if refusal is not None:
        return refusal
    body = metrics_module.exposition(settings.PROMETHEUS_MULTIPROC_DIR)
    return _no_store(HttpResponse(body, content_type=metrics_module.CONTENT_TYPE))
