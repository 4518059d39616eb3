"""WebSocket routes of the conversations: a room's chat and the seed's AI session."""

from django.urls import path

from llm.consumers import AiSessionConsumer, RoomChatConsumer

websocket_urlpatterns = [
    path("ws/chat/<uuid:room_id>/", RoomChatConsumer.as_asgi()),
    path("ws/llm/<uuid:session_id>/", AiSessionConsumer.as_asgi()),
]
