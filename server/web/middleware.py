"""The Content-Security-Policy of the web client's pages.

Every script of the client is a file served from this origin, so the policy allows scripts
from 'self' only: no inline script, no `eval`, no script from elsewhere. Trusted Types are
required as well, which makes the browser itself refuse any string passed to an HTML sink
such as `innerHTML`: the client builds its DOM with `createElement` and `textContent` only.
The API's own pages (/api/docs) and the admin keep Django's defaults.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        # 'self' covers ws:// and wss:// to this same host (CSP level 3).
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)

WEB_NAMESPACE = "web"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.namespace == WEB_NAMESPACE and HEADER not in response:
            response[HEADER] = POLICY
        return response
