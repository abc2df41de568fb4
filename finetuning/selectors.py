"""Reads that answer an operator's question about fine-tuning: the queue, a job's curve."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from finetuning.models import FineTuningJob
from jobs.worker.kinds import QueueItem

S = FineTuningJob.Status


def queue_items(kind: str) -> list[QueueItem]:
    """Unfinished jobs as the queue shows them (``/v1/queue``, the queue page)."""
    items = []
    now = timezone.now()
    for job in FineTuningJob.objects.unfinished().exclude(status=S.VALIDATING_FILES):
        running = bool(job.worker_id) and job.status in (S.RUNNING, S.PAUSING)
        remaining = (
            (job.estimated_finish - now).total_seconds()
            if job.estimated_finish and running
            else None
        )
        items.append(
            QueueItem(
                kind=kind,
                id=job.id,
                owner_id=job.owner_id,
                model="",  # needs no model loaded: the engine is stopped while it trains
                priority=job.priority,
                created_at=job.created_at,
                status=job.status,
                running=running,
                paused=job.status == S.PAUSED,
                done=job.step,
                total=job.total_steps,
                phase=2 if job.status == S.PAUSED else 1,
                remaining_seconds=max(0.0, remaining) if remaining is not None else None,
                url=f"/fine-tuning?job={job.id}",
                extra={"base_model": job.model},
            )
        )
    return items


def loss_series(job: FineTuningJob) -> dict[str, list[tuple[datetime, float]]]:
    """Training and validation loss over time (one point per step), for the loss chart."""
    series: dict[str, list[tuple[datetime, float]]] = {"training loss": [], "validation loss": []}
    names = (("train_loss", "training loss"), ("valid_loss", "validation loss"))
    for created_at, data in (
        job.events.filter(type="metrics").order_by("created_at").values_list("created_at", "data")
    ):
        for key, name in names:
            if data and data.get(key) is not None:
                series[name].append((created_at, float(data[key])))
    return {name: points for name, points in series.items() if points}
