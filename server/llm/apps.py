from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "llm"
    verbose_name = "AI sessions"

    def ready(self) -> None:
        from llm import checks  # noqa: F401  (registers the system checks)
