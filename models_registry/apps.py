from django.apps import AppConfig


class ModelsRegistryConfig(AppConfig):
    """The models a batch may name, and how the engine loads each of them."""

    name = "models_registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from jobs import signals
        from models_registry import receivers, sources

        # Read the operator's HF_HUB_OFFLINE now, before a conversion in this process sets it.
        sources.OPERATOR_OFFLINE = sources.operator_offline()

        signals.batch_status_changed.connect(
            receivers.on_batch_status_changed, dispatch_uid="models_registry.batch_status"
        )
