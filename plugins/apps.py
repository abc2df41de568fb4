from django.apps import AppConfig


class PluginsConfig(AppConfig):
    """Plugins: discovery, manifests, the five hook types, enable/disable at run time."""

    name = "plugins"
    verbose_name = "Plugins"

    def ready(self) -> None:
        from plugins import metrics

        metrics.register()
