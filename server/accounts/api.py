"""/api/auth/: sign-up, sign-in, sign-out, who am I (SPEC 3.1)."""

from __future__ import annotations

from typing import Literal

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from accounts import services
from accounts.models import User
from core.api import ErrorOut, OkOut, errors, signed_in

router = Router(tags=["auth"])


class CredentialsIn(Schema):
    username: str = Field(..., max_length=150)
    password: str = Field(..., max_length=4096)


class UserOut(Schema):
    id: int
    username: str


class UserEnvelope(Schema):
    result: Literal["success"]
    user: UserOut


def _user_body(user: User) -> dict[str, object]:
    return {"result": "success", "user": {"id": user.pk, "username": user.username}}


@router.post(
    "/signup/",
    response={201: UserEnvelope, **errors(415, 429)},
    summary="Create an account and sign in",
)
def signup(request: HttpRequest, payload: CredentialsIn) -> Status[dict[str, object]]:
    user = services.user_signup(
        request=request, username=payload.username, password=payload.password
    )
    return Status(201, _user_body(user))


@router.post("/login/", response={200: UserEnvelope, **errors(401, 415, 429)}, summary="Sign in")
def login(request: HttpRequest, payload: CredentialsIn) -> dict[str, object]:
    user = services.user_login(
        request=request, username=payload.username, password=payload.password
    )
    return _user_body(user)


@router.post(
    "/logout/",
    response={200: OkOut, **errors(415)},
    summary="Sign out and close this user's sockets",
)
def logout(request: HttpRequest) -> dict[str, object]:
    services.user_logout(request=request)
    return {"result": "success"}


@router.get(
    "/me/",
    auth=signed_in,
    response={200: UserEnvelope, 401: ErrorOut},
    summary="The signed-in user",
)
def me(request: HttpRequest) -> dict[str, object]:
    return _user_body(request.user)  # type: ignore[arg-type]
