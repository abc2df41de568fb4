from django.apps import AppConfig


class BenchmarksConfig(AppConfig):
    """Benchmark datasets, runs (ordinary batches of the console key), scores, cost, comparison."""

    name = "benchmarks"
    verbose_name = "Benchmarks"

    def ready(self) -> None:
        from benchmarks import receivers
        from jobs import signals

        signals.batch_status_changed.connect(
            receivers.on_batch_status_changed, dispatch_uid="benchmarks.batch_status"
        )
