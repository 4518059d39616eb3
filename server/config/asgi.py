"""ASGI entry point: HTTP goes to Django, WebSockets through the socket guard to the consumers,
lifespan events to the apps' start-up and shutdown hooks."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402
from core import lifespan  # noqa: E402
from core.middleware import ApiBodyLimit  # noqa: E402
from core.ws import SocketGuard  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": ApiBodyLimit(django_asgi_app),
        "websocket": AuthMiddlewareStack(SocketGuard(URLRouter(websocket_urlpatterns))),
        "lifespan": lifespan.app,
    }
)
