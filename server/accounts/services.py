"""Account state changes: sign-up, sign-in, sign-out, the assistant's account."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import authenticate, login, logout, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest

from accounts.models import User
from accounts.selectors import user_is_assistant
from accounts.usernames import username_key, username_normalised, username_skeleton
from core import closecodes, ratelimit
from core.errors import InvalidCredentials, RateLimited, ValidationFailed
from core.events import control_event, publish_on_commit
from core.groups import user_group

logger = logging.getLogger(__name__)

USERNAME_MAX = 150
TOO_MANY_SIGN_INS = "Too many failed sign-ins; wait before trying again."
TOO_MANY_SIGN_UPS = "Too many sign-ups from this address; wait before trying again."
# Any fixed number: it names the sign-up lock among this database's advisory locks.
SIGNUP_LOCK_ID = 0x5167_6E55


def client_address(request: HttpRequest) -> str:
    """The client's address as the server was handed it: behind a proxy listed in
    FORWARDED_ALLOW_IPS, uvicorn's pick from X-Forwarded-For (README, "Behind a TLS proxy")."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def _serialise_signups() -> None:
    """Make the look-alike check and the insert one step across concurrent sign-ups: nothing
    in the schema can refuse a second name with the same skeleton (existing accounts may
    already share one). SQLite's IMMEDIATE transactions already take one writer at a time."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SIGNUP_LOCK_ID])


def _refuse_unavailable(username: str) -> None:
    key, skeleton = username_key(username), username_skeleton(username)
    if key == username_key(settings.AI_USERNAME) or (
        skeleton == username_skeleton(settings.AI_USERNAME)
    ):
        raise ValidationFailed(
            f"username: '{username}' is reserved.", field="username", reasons=["reserved"]
        )
    if User.objects.filter(username_key=key).exists():
        raise ValidationFailed(
            f"username: '{username}' is already taken.", field="username", reasons=["taken"]
        )
    if User.objects.filter(username_skeleton=skeleton).exists():
        raise ValidationFailed(
            f"username: '{username}' looks too much like an existing username; choose another.",
            field="username",
            reasons=["lookalike"],
        )


@transaction.atomic
def user_signup(*, request: HttpRequest, username: str, password: str) -> User:
    """Create an account and sign it in. Every attempt counts against the client address's
    sign-up limit, refused ones too: "already taken" tells whether a name exists."""
    ratelimit.hit(
        "signup-address",
        client_address(request),
        settings.SIGNUP_RATE_PER_ADDRESS,
        message=TOO_MANY_SIGN_UPS,
    )
    username = username_normalised(username)
    if not username:
        raise ValidationFailed(
            "username: must not be empty.", field="username", reasons=["required"]
        )
    if len(username) > USERNAME_MAX:
        raise ValidationFailed(
            f"username: at most {USERNAME_MAX} characters.", field="username", reasons=["too_long"]
        )
    try:
        User.username_validator(username)
    except DjangoValidationError as exc:
        raise ValidationFailed(
            f"username: {' '.join(exc.messages)}", field="username", reasons=["invalid"]
        ) from exc
    _serialise_signups()
    _refuse_unavailable(username)
    candidate = User(username=username)
    try:
        password_validation.validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        # Django's own codes (password_too_short, ...), so that a page can say each in its
        # language.
        raise ValidationFailed(
            f"password: {' '.join(exc.messages)}",
            field="password",
            reasons=[error.code or "invalid" for error in exc.error_list],
        ) from exc
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError as exc:  # lost a race with a sign-up under the same name
        raise ValidationFailed(
            f"username: '{username}' is already taken.", field="username", reasons=["taken"]
        ) from exc
    login(request, candidate, backend="django.contrib.auth.backends.ModelBackend")
    logger.info("User %s signed up", candidate.pk)
    return candidate


def user_authenticate(*, request: HttpRequest, username: str, password: str) -> User:
    """The account these credentials open, under the sign-in throttles (the API's sign-in and
    the admin's both come here, so their failures add up).

    Failures are counted per client address (every account), per account (every address) and
    per account and address together. Past its limit an account is not locked: an address
    that has failed on it is refused, the right password included, while one that has not may
    still try, so its owner signs in from their own address and an attacker gets one more
    guess per fresh address. Raises RateLimited or InvalidCredentials.
    """
    key = username_key(username)
    address = client_address(request)
    pair = f"{address}/{key}"
    per_account = settings.LOGIN_FAILURE_RATE_PER_ACCOUNT
    per_address = settings.LOGIN_FAILURE_RATE_PER_ADDRESS
    ratelimit.check("login-address", address, per_address, message=TOO_MANY_SIGN_INS)
    guarded_for = ratelimit.blocked_for("login-account", key, per_account)
    if guarded_for is not None and ratelimit.counted("login-pair", pair, per_account):
        raise RateLimited(TOO_MANY_SIGN_INS, retry_after=guarded_for)
    # Django's ModelBackend looks the account up by its key (AccountManager) and hashes the
    # password whether or not there is one, so the answer takes as long either way.
    user = authenticate(request, username=username, password=password)
    if not isinstance(user, User) or user_is_assistant(user=user):
        ratelimit.count("login-address", address, per_address)
        ratelimit.count("login-account", key, per_account)
        ratelimit.count("login-pair", pair, per_account)
        logger.info("Failed sign-in from %s", address)
        raise InvalidCredentials()
    return user


def user_login(*, request: HttpRequest, username: str, password: str) -> User:
    """Sign in (see user_authenticate for the throttles)."""
    user = user_authenticate(request=request, username=username, password=password)
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
