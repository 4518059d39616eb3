"""The web client's pages: thin HTML shells whose ES modules talk to the JSON API and sockets.

A page checks only what decides whether it can be shown at all (signed in, a member of the
room); everything else comes from the API, so the browser and any other client see the same
rules.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Concatenate, ParamSpec
from uuid import UUID

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_safe

from accounts.models import User
from chat.access import access_room
from core.errors import NotFound
from llm.access import access_session

P = ParamSpec("P")
View = Callable[Concatenate[HttpRequest, P], HttpResponse]


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def signed_in_page(view: View[P]) -> View[P]:
    """Send anonymous visitors to the sign-in page, coming back here afterwards."""

    @wraps(view)
    def wrapper(request: HttpRequest, /, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("web:login"))
        return view(request, *args, **kwargs)

    return wrapper


def _page(
    request: HttpRequest, template: str, data: dict[str, Any] | None = None, status: int = 200
) -> HttpResponse:
    """Render a page with the JSON its module reads (`json_script`, never executed)."""
    user = request.user
    page_data: dict[str, Any] = {
        "user": (
            {"id": user.pk, "username": user.get_username(), "is_staff": user.is_staff}
            if user.is_authenticated
            else None
        ),
        "ai_username": settings.AI_USERNAME,
        "max_message_chars": settings.MAX_MESSAGE_CHARS,
        **(data or {}),
    }
    return render(request, template, {"page_data": page_data, **(data or {})}, status=status)


def _safe_next(request: HttpRequest) -> str:
    target = request.GET.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("web:rooms")


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    name = "web:rooms" if request.user.is_authenticated else "web:login"
    return HttpResponseRedirect(reverse(name))


@require_safe
def login_page(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return HttpResponseRedirect(_safe_next(request))
    return _page(request, "web/login.html", {"next": _safe_next(request)})


@require_safe
def signup_page(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return HttpResponseRedirect(_safe_next(request))
    return _page(request, "web/signup.html", {"next": _safe_next(request)})


@require_safe
@signed_in_page
def rooms_page(request: HttpRequest) -> HttpResponse:
    return _page(request, "web/rooms.html")


@require_safe
@signed_in_page
def room_page(request: HttpRequest, room_id: UUID) -> HttpResponse:
    try:
        room = access_room(room_id=room_id, user=_user(request))
    except NotFound:
        return _page(request, "web/not_found.html", status=404)
    return _page(request, "web/room.html", {"room_id": str(room.pk), "room_name": room.name})


@require_safe
@signed_in_page
def session_page(request: HttpRequest, session_id: UUID) -> HttpResponse:
    try:
        session = access_session(session_id=session_id, user=_user(request))
    except NotFound:
        return _page(request, "web/not_found.html", status=404)
    return _page(request, "web/session.html", {"session_id": str(session.pk)})


@require_safe
@signed_in_page
def usage_page(request: HttpRequest) -> HttpResponse:
    return _page(request, "web/usage.html")


@require_safe
@signed_in_page
def search_page(request: HttpRequest) -> HttpResponse:
    return _page(request, "web/search.html")
