"""WebSocket routes: the conversations (a room's chat, the seed's AI session), the user's own
`/ws/me/`, then every other path, refused with 4404 like a room that does not exist (not a
500)."""

from django.urls import path, re_path

from core.ws import NoSuchSocket
from llm.consumers import AiSessionConsumer, MeConsumer, RoomChatConsumer

websocket_urlpatterns = [
    path("ws/chat/<uuid:room_id>/", RoomChatConsumer.as_asgi()),
    path("ws/llm/<uuid:session_id>/", AiSessionConsumer.as_asgi()),
    path("ws/me/", MeConsumer.as_asgi()),
    # channels routes ASGI apps; django-stubs types route targets as views.
    re_path(r"", NoSuchSocket()),  # type: ignore[arg-type]
]
