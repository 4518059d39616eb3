from __future__ import annotations

from django.conf import settings

from accounts.models import User


def user_is_assistant(*, user: User) -> bool:
    return user.username == settings.AI_USERNAME


def user_get_by_username(*, username: str) -> User | None:
    return User.objects.filter(username__iexact=username, is_active=True).first()
