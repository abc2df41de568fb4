from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Files, batches, their requests and the worker pipeline that runs them."""

    name = "jobs"
    verbose_name = "Batch jobs"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from jobs import metrics, runner, signals, webhooks
        from jobs.worker import kinds, warm
        from jobs.worker import signals as worker_signals

        # Batch chunks: the first kind of GPU work the worker runtime runs.
        kinds.register(runner.BatchChunkWork())
        signals.batch_status_changed.connect(
            webhooks.on_status_changed, dispatch_uid="jobs.webhooks.status"
        )
        signals.batch_chunk_committed.connect(
            webhooks.on_chunk_committed, dispatch_uid="jobs.webhooks.progress"
        )
        # The registry keeps each model's last load time and memory, and the engine's peak
        # memory since that load (model tests read them).
        worker_signals.engine_loaded.connect(
            runner.note_engine_loaded, dispatch_uid="jobs.runner.engine_loaded"
        )
        worker_signals.engine_peak_memory.connect(
            runner.note_engine_peak_memory, dispatch_uid="jobs.runner.engine_peak_memory"
        )
        # A django-q2 worker process prepares its engine as soon as it is spawned.
        post_spawn.connect(warm.warm_start, dispatch_uid="jobs.worker.warm")
        # batch_* series computed from the database at scrape time, served by /metrics.
        metrics.register()
