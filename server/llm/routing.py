from django.urls import path

from llm.consumers import AiSessionConsumer

websocket_urlpatterns = [
    path("ws/llm/<uuid:session_id>/", AiSessionConsumer.as_asgi()),
]
