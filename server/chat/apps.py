from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        from chat.workspace import announce_presence
        from core import sockets

        sockets.on_presence(announce_presence)
