"""An account that changes closes the sockets it no longer signs in (SPEC 3.1, 4).

Deactivation, a new password or the account's deletion may happen anywhere: the admin, a
management command, a shell, `set_password` in a script. Model signals are the one place all of
them pass, so the reaction is wired here; what it does is a service-like step: after the change
commits, every socket of the user, on every process, re-checks the session it was opened with
(`core.ws.AppConsumer`: the session exists, the account is active, the password is the one the
session was signed with) and closes with 4401 if it no longer signs the user in. The session
that changed its own password keeps working (Django updates its hash), so do its sockets.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from accounts.models import User
from core import closecodes
from core.events import control_event, publish_on_commit, user_recheck
from core.groups import user_group

# The fields whose change can end a user's right to be signed in.
_WATCHED = frozenset({"password", "is_active"})


@receiver(pre_save, sender=User, dispatch_uid="accounts.remember_sign_in_state")
def _remember(sender: type[User], instance: User, update_fields: Any = None, **kwargs: Any) -> None:
    instance._signed_in_state = None  # type: ignore[attr-defined]
    if instance.pk is None or (update_fields is not None and not _WATCHED & set(update_fields)):
        return  # a new account, or e.g. the last_login update of every sign-in
    instance._signed_in_state = (  # type: ignore[attr-defined]
        User.objects.filter(pk=instance.pk).values_list("password", "is_active").first()
    )


@receiver(post_save, sender=User, dispatch_uid="accounts.recheck_sockets")
def _recheck(sender: type[User], instance: User, created: bool, **kwargs: Any) -> None:
    before = getattr(instance, "_signed_in_state", None)
    if created or before is None:
        return
    if before != (instance.password, instance.is_active):
        publish_on_commit(user_recheck(instance.pk))


@receiver(post_delete, sender=User, dispatch_uid="accounts.close_sockets")
def _close(sender: type[User], instance: User, **kwargs: Any) -> None:
    publish_on_commit(
        control_event(user_group(instance.pk), "close", code=closecodes.NOT_AUTHENTICATED)
    )
