from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "llm"
    verbose_name = "AI sessions"

    def ready(self) -> None:
        from chat.events import add_message_details
        from core import lifespan, sockets
        from llm import checks  # noqa: F401  (registers the system checks)
        from llm.consumers import announce_viewers
        from llm.generation import resume_replies, stop_replies
        from llm.providers import warm_up
        from llm.threads import reply_details

        # History shows which question each of the assistant's replies answers, and more.
        add_message_details(reply_details)

        lifespan.on_startup.append(warm_up)
        lifespan.on_startup.append(resume_replies)
        lifespan.on_shutdown.append(stop_replies)
        sockets.on_roster_change(announce_viewers)
