"""Signal receivers: a benchmark batch that ends moves its run on (in a task, never inline)."""

from __future__ import annotations

from django_q.tasks import async_task

from benchmarks.models import RunBatch

ENDED = {"completed", "failed", "expired", "cancelled"}


def on_batch_status_changed(sender, batch_id: str, old: str, new: str, **kwargs) -> None:
    """``jobs.signals.batch_status_changed``: sent after the change committed."""
    if new not in ENDED:
        return
    run_id = RunBatch.objects.filter(batch_id=batch_id).values_list("run_id", flat=True).first()
    if run_id is not None:
        async_task("benchmarks.tasks.advance_run", run_id)
