"""Which browser origins may talk to this server: the one rule that the API's cross-site
request checks (core.middleware) and the socket handshake (core.ws) both apply."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host


def origin_allowed(origin: str | None, host: str | None) -> bool:
    """Whether a browser on `origin` may talk to this server reached as `host`.

    No Origin (not a browser) is left to the cookie. The server's own host (when it is one of
    ALLOWED_HOSTS) and the configured front-end origins pass.
    """
    if origin is None:
        return True
    origin = origin.strip().lower()
    trusted = {
        o.lower().rstrip("/")
        for o in (*settings.CORS_ALLOWED_ORIGINS, *settings.CSRF_TRUSTED_ORIGINS)
    }
    if origin in trusted:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or host is None:
        return False
    if parts.netloc != host.lower():
        return False
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)
