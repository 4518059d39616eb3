"""WebSocket close codes (SPEC 4): one name each, for the sockets that close with them and the
services that ask for a close."""

from __future__ import annotations

# Codes a client reads to know why (SPEC 4).
NOT_AUTHENTICATED = 4401
FORBIDDEN = 4403
NOT_FOUND = 4404
SESSION_ENDED = 4410
TOO_MANY_SOCKETS = 4429
# RFC 6455 codes.
TOO_BIG = 1009
INTERNAL_ERROR = 1011
# "Try again later": the server could not serve the socket now (a service is down), or the
# client read too slowly to keep up.
TRY_AGAIN = 1013
