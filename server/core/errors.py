"""One error hierarchy for the whole product.

Every error has a machine `code` and a human `message`. The HTTP layer turns it into the JSON
envelope (`core.api`), the WebSocket layer into an `error` frame (`core.ws`); nothing else
formats errors.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status: int = 400
    code: str = "bad_request"
    message: str = "The request could not be handled."

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


class AiNotConfigured(ServiceUnavailable):
    code = "ai_not_configured"
    message = (
        "The AI assistant is not configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for an "
        "OpenAI-compatible server), or LLM_PROVIDER=echo for the offline assistant."
    )


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


STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: NotAuthenticated.code,
    403: Forbidden.code,
    404: NotFound.code,
    405: MethodNotAllowed.code,
    413: TooLarge.code,
    415: UnsupportedMediaType.code,
    429: RateLimited.code,
    500: "internal_error",
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
