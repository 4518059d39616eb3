from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core import lifespan
        from core.serving import claim_async

        # First of all hooks: a process that may not serve must not resume replies either.
        lifespan.on_startup.insert(0, claim_async)
