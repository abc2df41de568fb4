from django.apps import AppConfig


class BatchserverConfig(AppConfig):
    """Shared pieces: API keys, authentication, the OpenAI error envelope and pagination."""

    name = "batchserver"
    verbose_name = "Access"
