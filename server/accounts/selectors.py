from __future__ import annotations

from django.conf import settings

from accounts.models import User
from accounts.usernames import username_key


def user_is_assistant(*, user: User) -> bool:
    return user.username == settings.AI_USERNAME


def user_get_by_username(*, username: str) -> User | None:
    """An active account by name, spelt in any form of the same normalised key (as at
    sign-in; never the database's own case-insensitive match, which differs by vendor)."""
    return User.objects.filter(username_key=username_key(username), is_active=True).first()
