from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Files, batches, their requests and the worker pipeline that runs them."""

    name = "jobs"
    verbose_name = "Batch jobs"

    def ready(self) -> None:
        from jobs import signals, webhooks

        signals.batch_status_changed.connect(
            webhooks.on_status_changed, dispatch_uid="jobs.webhooks.status"
        )
        signals.batch_chunk_committed.connect(
            webhooks.on_chunk_committed, dispatch_uid="jobs.webhooks.progress"
        )
