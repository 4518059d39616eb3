from chat.routing import websocket_urlpatterns as chat_routes
from llm.routing import websocket_urlpatterns as llm_routes

websocket_urlpatterns = [*chat_routes, *llm_routes]
