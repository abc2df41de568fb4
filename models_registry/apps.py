from django.apps import AppConfig


class ModelsRegistryConfig(AppConfig):
    """The models a batch may name, and how the engine loads each of them."""

    name = "models_registry"
    verbose_name = "Model registry"
