from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.db import models

from accounts.usernames import username_key, username_skeleton


class AccountManager(UserManager["User"]):
    def get_by_natural_key(self, username: str | None) -> User:
        """By the normalised key (accounts.usernames): what Django's ModelBackend, the admin's
        sign-in and `createsuperuser` look accounts up with."""
        return self.get(username_key=username_key(username or ""))


class User(AbstractUser):
    """A person using the chat (and the `AI_Assistant` account, which cannot sign in).

    `username_key` (unique) makes names that differ only in case or compatibility form one
    name; `username_skeleton` finds names that only look alike (accounts.usernames).
    """

    username_key = models.TextField(unique=True, editable=False)
    username_skeleton = models.TextField(db_index=True, editable=False)

    objects: ClassVar[AccountManager] = AccountManager()

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"

    def clean(self) -> None:
        """The admin's forms compare names with `username__iexact`, which misses names that
        share a key but not a lower case ('Straße', 'STRASSE'): refuse those here rather than
        at the unique index."""
        super().clean()
        taken = User.objects.filter(username_key=username_key(self.username))
        if taken.exclude(pk=self.pk).exists():
            raise ValidationError({"username": "A user with that username already exists."})

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Derived from the username on every write path (the API's sign-up, the admin,
        # createsuperuser, create_user): a row saved without them could not be signed in to,
        # or would slip past the look-alike check. Queryset .update() of usernames would
        # bypass this; nothing in the project does that.
        self.username_key = username_key(self.username)
        self.username_skeleton = username_skeleton(self.username)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "username" in update_fields:
            kwargs["update_fields"] = {*update_fields, "username_key", "username_skeleton"}
        super().save(*args, **kwargs)
