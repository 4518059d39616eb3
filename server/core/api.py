"""The JSON API's shared pieces: authentication, the error envelope, the body parser.

Every answer under /api/ is `{"result": "success", ...}` or
`{"result": "error", "code", "message"}`. Exceptions become the envelope here, in one place;
answers that Django itself produces (unknown URL, 405...) are wrapped by
`core.middleware.ApiEnvelopeMiddleware`.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.security import APIKeyCookie

from core.errors import (
    AppError,
    InvalidJson,
    NotAuthenticated,
    NotFound,
    ValidationFailed,
    app_error_for,
    error_body,
)

logger = logging.getLogger(__name__)


class SessionCookieAuth(APIKeyCookie):
    """Django's session cookie. Cross-site requests are refused by ApiGuardMiddleware (JSON
    only, Origin checked, SameSite=Lax), so the token-based CSRF check is not used: the seed's
    client posts JSON without a token."""

    param_name = settings.SESSION_COOKIE_NAME

    def __init__(self) -> None:
        super().__init__(csrf=False)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        return request.user if request.user.is_authenticated else None


signed_in = SessionCookieAuth()


class ErrorOut(Schema):
    result: Literal["error"]
    code: str
    message: str
    retry_after: int | None = None
    errors: list[dict[str, Any]] | None = None
    field: str | None = Field(None, description="The field a validation error is about.")
    reasons: list[str] | None = Field(
        None,
        description=(
            "Why the field was refused, as codes a client can say in its own words: for "
            "sign-up, `taken`, `reserved`, `lookalike`, `invalid`, `required`, `too_long`, and "
            "Django's password codes (`password_too_short`, `password_too_common`, "
            "`password_entirely_numeric`, `password_too_similar`)."
        ),
    )


class OkOut(Schema):
    result: Literal["success"]


def errors(*statuses: int) -> dict[int, type[ErrorOut]]:
    """Response declarations for the error answers an endpoint can give (for the OpenAPI doc).

    Every endpoint can answer 400 (bad input) and 503 (the database or Redis is down)."""
    return dict.fromkeys((400, *statuses, 503), ErrorOut)


def _contains_nul(value: Any) -> bool:
    # Iterative: json.loads accepts nesting deeper than a recursive walk could follow.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class JsonParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        try:
            data = json.loads(request.body)
        except (ValueError, RecursionError) as exc:
            raise InvalidJson() from exc
        # PostgreSQL cannot store or even compare text holding NUL: refused here, one answer
        # on every database instead of a 500 on one of them.
        if _contains_nul(data):
            raise ValidationFailed("Text must not contain NUL (\\u0000) characters.")
        # Every body is an object. Said here, because a body whose fields are all optional (a
        # PATCH) is read field by field, and `[1, 2]` would pass as "change nothing".
        if not isinstance(data, dict):
            raise ValidationFailed("The body must be a JSON object.")
        return data


def _app_error(request: HttpRequest, exc: Any, api: NinjaAPI) -> HttpResponse:
    return api.create_response(request, exc.payload(), status=exc.status)


def _validation_error(request: HttpRequest, exc: Any, api: NinjaAPI) -> HttpResponse:
    details: list[dict[str, Any]] = [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", ""))}
        for err in exc.errors
    ]
    first = details[0] if details else None
    message = "The request is not valid."
    if first:
        loc: list[str] = first["loc"]
        where = ".".join(p for p in loc if p not in ("body", "payload", "query", "path"))
        message = f"{where}: {first['msg']}" if where else first["msg"]
    error = ValidationFailed(message, errors=details)
    return _app_error(request, error, api)


def _http_error(request: HttpRequest, exc: Any, api: NinjaAPI) -> HttpResponse:
    cause = exc.__cause__
    if isinstance(cause, AppError):
        return _app_error(request, cause, api)
    if isinstance(exc, AuthenticationError):
        return _app_error(request, NotAuthenticated(), api)
    return api.create_response(
        request, error_body(exc.status_code, str(exc)), status=exc.status_code
    )


def _not_found(request: HttpRequest, exc: Any, api: NinjaAPI) -> HttpResponse:
    return _app_error(request, NotFound(), api)


def _unexpected(request: HttpRequest, exc: Any, api: NinjaAPI) -> HttpResponse:
    error = app_error_for(exc, where=f"{request.method} {request.path}")
    return _app_error(request, error, api)


def install_error_handlers(api: NinjaAPI) -> None:
    api.add_exception_handler(Exception, lambda r, e: _unexpected(r, e, api))
    api.add_exception_handler(Http404, lambda r, e: _not_found(r, e, api))
    api.add_exception_handler(HttpError, lambda r, e: _http_error(r, e, api))
    api.add_exception_handler(ValidationError, lambda r, e: _validation_error(r, e, api))
    api.add_exception_handler(AppError, lambda r, e: _app_error(r, e, api))
