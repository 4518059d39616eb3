"""Account state changes: sign-up, sign-in, sign-out, the assistant's account."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import authenticate, login, logout, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from accounts.models import User
from core import closecodes, ratelimit
from core.errors import InvalidCredentials, ValidationFailed
from core.events import control_event, publish_on_commit
from core.groups import user_group

logger = logging.getLogger(__name__)


def _reserved(username: str) -> bool:
    return username.casefold() == settings.AI_USERNAME.casefold()


def _client_address(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR") or "unknown")


@transaction.atomic
def user_signup(*, request: HttpRequest, username: str, password: str) -> User:
    """Create an account and sign it in."""
    username = username.strip()
    if not username:
        raise ValidationFailed("username: must not be empty.")
    if _reserved(username):
        raise ValidationFailed(f"username: '{username}' is reserved.")
    try:
        User.username_validator(username)
    except DjangoValidationError as exc:
        raise ValidationFailed(f"username: {' '.join(exc.messages)}") from exc
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationFailed(f"username: '{username}' is already taken.")
    candidate = User(username=username)
    try:
        password_validation.validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise ValidationFailed(f"password: {' '.join(exc.messages)}") from exc
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError as exc:  # lost a race with a sign-up under the same name
        raise ValidationFailed(f"username: '{username}' is already taken.") from exc
    login(request, candidate, backend="django.contrib.auth.backends.ModelBackend")
    logger.info("User %s signed up", candidate.pk)
    return candidate


def user_login(*, request: HttpRequest, username: str, password: str) -> User:
    """Sign in, throttling failures per account and per client address."""
    account_key = username.strip().casefold()
    address = _client_address(request)
    too_many = "Too many failed sign-ins; wait before trying again."
    ratelimit.check(
        "login-account", account_key, settings.LOGIN_FAILURE_RATE_PER_ACCOUNT, message=too_many
    )
    ratelimit.check(
        "login-address", address, settings.LOGIN_FAILURE_RATE_PER_ADDRESS, message=too_many
    )
    user = None
    if not _reserved(username.strip()):
        match = User.objects.filter(username__iexact=username.strip()).only("username").first()
        if match is not None:
            user = authenticate(request, username=match.username, password=password)
    if user is None:
        ratelimit.hit("login-account", account_key, settings.LOGIN_FAILURE_RATE_PER_ACCOUNT)
        ratelimit.hit("login-address", address, settings.LOGIN_FAILURE_RATE_PER_ADDRESS)
        logger.info("Failed sign-in from %s", address)
        raise InvalidCredentials()
    login(request, user)
    return user


def user_logout(*, request: HttpRequest) -> None:
    """Sign out and close every socket the user has open (they were opened with a session that
    may no longer be valid; a client whose other session still is simply reconnects)."""
    user = request.user
    if user.is_authenticated:
        publish_on_commit(
            control_event(user_group(int(user.pk)), "close", code=closecodes.NOT_AUTHENTICATED)
        )
    logout(request)


def assistant_user() -> User:
    """The `AI_Assistant` account, found or created by name (never by primary key)."""
    user, created = User.objects.get_or_create(
        username=settings.AI_USERNAME, defaults={"first_name": "AI", "last_name": "Assistant"}
    )
    if created or user.has_usable_password():
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user
