"""One error hierarchy for the whole product.

Every error has a machine `code` and a human `message`. It is rendered in exactly two places:
as the HTTP answer's JSON envelope (`AppError.payload`, used by `core.api` and the middlewares)
and as a socket frame (`error_frame`, used by `core.ws` and by the assistant's reply pipeline).
Errors of the AI flow (`ai_flow = True`: a provider failure, a budget, an ended session, no
configured provider) go out on sockets as the seed's `ai_error` frame; the others as `error`.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

logger = logging.getLogger(__name__)

# The seed's text of every `ai_error` frame; the `code` and `detail` say what happened.
AI_ERROR_TEXT = "AI 응답 생성 중 오류가 발생했습니다."


class AppError(Exception):
    status: int = 400
    code: str = "bad_request"
    message: str = "The request could not be handled."
    # Whether a socket reports it as `ai_error` (SPEC 4.2) rather than `error`.
    ai_flow: bool = False

    def __init__(self, message: str | None = None, *, code: str | None = None, **extra: Any):
        self.message = message or self.message
        self.code = code or self.code
        self.extra = extra
        super().__init__(self.message)

    def payload(self) -> dict[str, Any]:
        return {"result": "error", "code": self.code, "message": self.message, **self.extra}


class InvalidJson(AppError):
    code = "invalid_json"
    message = "The body is not valid JSON."


class ValidationFailed(AppError):
    code = "validation_error"
    message = "The request is not valid."


def text_field(
    raw: str, *, field: str, at_most: int, at_least: int = 0, empty: str | None = None
) -> str:
    """A text field trimmed and checked: `empty` says why a blank one is refused (None: blank
    is allowed, unless `at_least` asks for more), then its length is checked."""
    text = raw.strip()
    if not text and empty is not None:
        raise ValidationFailed(f"{field}: {empty}.")
    if len(text) < at_least:
        raise ValidationFailed(f"{field}: at least {at_least} characters.")
    if len(text) > at_most:
        raise ValidationFailed(f"{field}: at most {at_most} characters.")
    return text


class EmptyMessage(ValidationFailed):
    code = "empty_message"
    message = "The message is empty."


class MessageTooLong(ValidationFailed):
    code = "message_too_long"
    message = "The message is too long."


class UnknownType(ValidationFailed):
    code = "unknown_type"
    message = "Unknown message type."


class NotAuthenticated(AppError):
    status = 401
    code = "not_authenticated"
    message = "Sign in first."


class InvalidCredentials(AppError):
    status = 401
    code = "invalid_credentials"
    message = "Wrong username or password."


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    message = "You may not do this."


class NotFound(AppError):
    status = 404
    code = "not_found"
    message = "Not found."


class MethodNotAllowed(AppError):
    status = 405
    code = "method_not_allowed"
    message = "This method is not allowed here."


class TooLarge(AppError):
    status = 413
    code = "too_large"
    message = "The request body is too large."


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"
    message = "Send the body as JSON with Content-Type: application/json."


class RateLimited(AppError):
    status = 429
    code = "rate_limited"
    message = "Too many requests; try again later."

    def __init__(self, message: str | None = None, *, retry_after: int, **extra: Any):
        super().__init__(message, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class ServiceUnavailable(AppError):
    status = 503
    code = "service_unavailable"
    message = "A service the server depends on is unavailable; try again shortly."


class InternalError(AppError):
    """A bug of this server, not of anything it depends on: logged with its traceback."""

    status = 500
    code = "internal_error"
    message = "The server hit an unexpected error; it has been logged."


class AiNotConfigured(ServiceUnavailable):
    code = "ai_not_configured"
    message = (
        "The AI assistant is not configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for an "
        "OpenAI-compatible server), or LLM_PROVIDER=echo for the offline assistant."
    )
    ai_flow = True


class SessionInactive(AppError):
    status = 410
    code = "session_inactive"
    message = "This AI session has been deactivated; start a new one."
    ai_flow = True


class BudgetExceeded(AppError):
    """A spending limit leaves no room for the call until `resets_at`; `scope` says which
    (SPEC 11.2): `user`, `group`, `room` or `server`."""

    status = 429
    code = "budget_exceeded"
    message = "The AI budget is used up until it resets."
    ai_flow = True

    def __init__(
        self,
        message: str,
        *,
        scope: Literal["user", "group", "room", "server"],
        resets_at: dt.datetime,
        **extra: Any,
    ) -> None:
        super().__init__(message, scope=scope, resets_at=resets_at.isoformat(), **extra)
        self.scope = scope
        self.resets_at = resets_at


class ProviderError(AppError):
    """A call to the LLM provider failed. `code` is one of SPEC 4.2's: `upstream_auth`,
    `upstream_rate_limited`, `upstream_timeout`, `upstream_unavailable`, `ai_not_configured`
    (the provider does not know the model). Provider modules raise nothing else."""

    status = 502
    code = "upstream_unavailable"
    message = "The AI provider failed."
    ai_flow = True

    def __init__(self, code: str, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail, code=code)
        # The provider's own HTTP status, when it answered (for logs, never for clients).
        self.upstream_status = status


class ErrorFrame(BaseModel):
    """A frame refused by the server (SPEC 4.1): the connection stays open, nothing is saved."""

    model_config = ConfigDict(extra="allow")
    type: Literal["error"] = "error"
    code: str
    message: str
    retry_after: int | None = None


class AiErrorFrame(BaseModel):
    """The seed's `ai_error` (SPEC 4.2): the assistant could not answer, and `code` says why."""

    model_config = ConfigDict(extra="allow")
    type: Literal["ai_error"] = "ai_error"
    message: str = AI_ERROR_TEXT
    code: str
    detail: str | None = None
    retry_after: int | None = None
    resets_at: str | None = None
    scope: Literal["user", "group", "room", "server"] | None = None


def error_frame(error: AppError, *, ai: bool | None = None) -> dict[str, Any]:
    """The socket frame reporting `error`: the seed's `ai_error` for errors of the AI flow
    (`ai` overrides the error's own `ai_flow`), else `error`."""
    if error.ai_flow if ai is None else ai:
        frame: BaseModel = AiErrorFrame(code=error.code, detail=error.message, **error.extra)
    else:
        frame = ErrorFrame(code=error.code, message=error.message, **error.extra)
    return frame.model_dump(exclude_none=True)


def unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The error to show when `exc` means a service the server depends on is down (the
    database, or Redis behind the cache, channel layer and counters); None otherwise."""
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError):
        return ServiceUnavailable("The database is unavailable; try again shortly.")
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is a dependency
        return None
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return ServiceUnavailable("A shared service (Redis) is unavailable; try again shortly.")
    return None


def app_error_for(exc: BaseException, *, where: str) -> AppError:
    """What to tell the client about any exception raised while serving `where`: the error
    itself when it is an AppError; a ServiceUnavailable for an outage of the database or
    Redis (one log line); otherwise an InternalError, logged with its traceback. The API
    (core.api) and the sockets (core.ws) both answer through this."""
    if isinstance(exc, AppError):
        return exc
    down = unavailable(exc)
    if down is not None:
        logger.error("%s: %s (%s)", where, down.message, type(exc).__name__)
        return down
    logger.error("Unhandled error in %s", where, exc_info=exc)
    return InternalError()


STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: NotAuthenticated.code,
    403: Forbidden.code,
    404: NotFound.code,
    405: MethodNotAllowed.code,
    413: TooLarge.code,
    415: UnsupportedMediaType.code,
    429: RateLimited.code,
    500: InternalError.code,
    503: ServiceUnavailable.code,
}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """The envelope for an answer that no AppError produced (framework 404, 405, 500...)."""
    from http import HTTPStatus

    try:
        default = HTTPStatus(status).phrase
    except ValueError:
        default = "Error"
    return {
        "result": "error",
        "code": STATUS_CODES.get(status, "error"),
        "message": message or f"{default}.",
    }
