"""/healthz, /readyz and /metrics.

- `/healthz`: the process answers (a liveness probe; it touches nothing else).
- `/readyz`: the database, the channel layer, the cache and the AI provider's configuration
  all work; 503 naming the parts that do not (a load balancer's health check).
- `/metrics`: Prometheus text format, for a bearer token equal to METRICS_TOKEN or a signed-in
  staff user.

`ops.middleware.ProbeMiddleware` answers the two probes (and token-bearing scrapes) before
host validation and the HTTPS redirect; the URLs below serve them otherwise.
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
    results = await health.readiness()
    checks = {r.name: {"ok": r.ok, "detail": r.detail, "ms": r.ms} for r in results}
    failed = [r.name for r in results if not r.ok]
    if not failed:
        return _no_store(JsonResponse({"result": "success", "status": "ready", "checks": checks}))
    body = {
        "result": "error",
        "code": "not_ready",
        "message": f"Not ready: {', '.join(failed)}.",
        "failed": failed,
        "checks": checks,
    }
    return _no_store(JsonResponse(body, status=503))


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if the request has one."""
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _metrics_refusal(request: HttpRequest) -> JsonResponse | None:
    token = bearer_token(request)
    if token is not None:
        expected = settings.METRICS_TOKEN
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            return None
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
