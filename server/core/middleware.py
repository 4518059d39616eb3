"""Request rules for the JSON API (SPEC 3).

`ApiGuardMiddleware` is the API's protection against cross-site request forgery that still
lets the seed's client post JSON with `credentials: 'include'` and no token:

- an unsafe request that carries a body must be JSON (a cross-site HTML form cannot send
  `application/json`, and a cross-site script cannot without a CORS preflight), else 415;
- an `Origin` header, when sent, must be this server's own or a configured front-end origin,
  else 403;
- the session cookie is `SameSite=Lax` (settings), so cross-site POSTs carry no cookie at all.

`ApiEnvelopeMiddleware` gives every error answer under /api/ the JSON envelope, including the
ones Django produces before a view runs (unknown URL, wrong method).

`ApiBodyLimit` (ASGI) holds an API body to API_MAX_BODY_BYTES as it arrives, chunked or not:
the one size check of the API (it runs before Django reads a body at all).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.errors import (
    AppError,
    Forbidden,
    TooLarge,
    UnsupportedMediaType,
    error_body,
)
from core.origin import origin_allowed

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The API's HTML pages, which are not JSON answers.
NON_JSON_PATHS = frozenset({"/api/docs"})


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _has_body(request: HttpRequest) -> bool:
    length = request.META.get("CONTENT_LENGTH") or "0"
    try:
        size = int(length)
    except ValueError:
        size = 1
    return size > 0 or "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()


def _refusal(error: AppError) -> JsonResponse:
    return JsonResponse(error.payload(), status=error.status)


class ApiGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api(request) and request.method in UNSAFE_METHODS:
            refusal = self.check(request)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    def check(self, request: HttpRequest) -> JsonResponse | None:
        origin = request.META.get("HTTP_ORIGIN")
        host = request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME")
        if not origin_allowed(origin, host):
            logger.warning(
                "Cross-site %s %s refused (Origin %s)", request.method, request.path, origin
            )
            return _refusal(Forbidden("Cross-site request refused: this Origin is not allowed."))
        content_type = request.META.get("CONTENT_TYPE", "")
        # A form's content type is refused even with an empty body: only scripts that could
        # send JSON may change state.
        if content_type and not _is_json(content_type):
            return _refusal(UnsupportedMediaType())
        if not content_type and _has_body(request):
            return _refusal(UnsupportedMediaType())
        return None


class ApiEnvelopeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            is_api(request)
            and response.status_code >= 400
            and request.path not in NON_JSON_PATHS
            and not _is_json(response.get("Content-Type", ""))
        ):
            wrapped = JsonResponse(error_body(response.status_code), status=response.status_code)
            if "Allow" in response:
                wrapped["Allow"] = response["Allow"]
            return wrapped
        return response


class ApiBodyLimit:
    """ASGI wrapper: an /api/ request body over API_MAX_BODY_BYTES is answered 413 as soon as
    it is known to be too large. Django's ASGI handler reads a whole chunked body (one with no
    Content-Length) to disk before any middleware runs, and its size checks look only at
    Content-Length, so without this a chunked body of any size reached the views."""

    def __init__(self, inner: Callable[..., Awaitable[None]]) -> None:
        self.inner = inner

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(API_PREFIX):
            await self.inner(scope, receive, send)
            return
        limit = settings.API_MAX_BODY_BYTES
        declared = dict(scope.get("headers", ())).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        held: list[dict[str, Any]] = []
        size = 0
        while True:
            message = await receive()
            held.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > limit:
                await self._refuse(send, limit)
                return
            if not message.get("more_body"):
                break

        async def replay() -> dict[str, Any]:
            return held.pop(0) if held else await receive()

        await self.inner(scope, replay, send)

    @staticmethod
    async def _refuse(send: Callable[[dict[str, Any]], Awaitable[None]], limit: int) -> None:
        body = json.dumps(TooLarge(f"The body is larger than {limit} bytes.").payload()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": TooLarge.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
