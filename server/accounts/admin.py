from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError

from accounts import services
from accounts.models import User
from core.errors import InvalidCredentials, RateLimited


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in through `services.user_authenticate`, so that it is throttled as
    the API's is, and their failures count together."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password and self.request is not None:
            try:
                self.user_cache = services.user_authenticate(
                    request=self.request, username=username, password=password
                )
            except RateLimited as exc:
                raise ValidationError(
                    f"{exc.message} (about {exc.retry_after} s)", code="rate_limited"
                ) from exc
            except InvalidCredentials as exc:
                raise self.get_invalid_login_error() from exc
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


admin.site.login_form = ThrottledAdminAuthenticationForm


@admin.register(User)
class ChatUserAdmin(UserAdmin[User]):
    list_display = ("username", "is_staff", "is_active", "date_joined", "last_login")
    search_fields = ("username", "first_name", "last_name", "email")
