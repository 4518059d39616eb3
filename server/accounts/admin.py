from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import User


@admin.register(User)
class ChatUserAdmin(UserAdmin[User]):
    list_display = ("username", "is_staff", "is_active", "date_joined", "last_login")
    search_fields = ("username", "first_name", "last_name", "email")
