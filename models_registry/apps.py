from django.apps import AppConfig


class ModelsRegistryConfig(AppConfig):
    """The models a batch may name, and how the engine loads each of them."""

    name = "models_registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from jobs import signals
        from models_registry import receivers

        signals.batch_status_changed.connect(
            receivers.on_batch_status_changed, dispatch_uid="models_registry.batch_status"
        )
