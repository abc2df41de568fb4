from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """The operator console's own pages: hub, dashboard, settings, config, logs, health."""

    name = "batchserver.operations"
    label = "operations"
    verbose_name = "Operations"
