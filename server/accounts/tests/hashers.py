"""A password hasher that counts its work, so that a test can see whether a sign-in hashed the
password without timing it."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.hashers import MD5PasswordHasher


class CountingHasher(MD5PasswordHasher):
    """The test suite's MD5 hasher (same algorithm name, so existing hashes still verify),
    counting every hash it computes."""

    computed = 0

    def encode(self, password: str, salt: str, *args: Any, **kwargs: Any) -> str:
        type(self).computed += 1
        return super().encode(password, salt, *args, **kwargs)
