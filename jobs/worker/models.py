"""Worker processes: who is alive, what each runs, what each has loaded."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone

from batchserver import live


class WorkerQuerySet(models.QuerySet):
    def alive(self) -> WorkerQuerySet:
        """Workers with a recent heartbeat that have not said they stopped (the one rule)."""
        return self.filter(last_heartbeat__gte=timezone.now() - Worker.stale_after()).exclude(
            state=Worker.State.STOPPED
        )

    def gone(self) -> WorkerQuerySet:
        """Workers whose heartbeat is stale, or that said they stopped."""
        return self.filter(
            models.Q(last_heartbeat__lt=timezone.now() - Worker.stale_after())
            | models.Q(state=Worker.State.STOPPED)
        )

    def recent(self) -> WorkerQuerySet:
        """Workers seen within the last hour (the API, the pages and the metrics list these)."""
        return self.filter(last_heartbeat__gte=timezone.now() - Worker.FORGET_AFTER)


class Worker(models.Model):
    """One worker process (one per GPU), updated by its heartbeat every few seconds."""

    class State(models.TextChoices):
        IDLE = "idle"
        LOADING = "loading"
        RUNNING = "running"
        EXCLUSIVE = "exclusive"  # running work that needs the GPU alone (engine stopped)
        STOPPED = "stopped"

    worker_id = models.CharField(max_length=100, unique=True, help_text="host:pid")
    hostname = models.CharField(max_length=100)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now, db_index=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.IDLE)
    loaded_model = models.CharField(max_length=200, blank=True)
    current_batch_id = models.CharField(max_length=40, blank=True)
    current_chunk = models.PositiveIntegerField(null=True, blank=True)
    current_work = models.CharField(
        max_length=200, blank=True, help_text="The unit of GPU work it runs (any kind)."
    )
    requests_done = models.BigIntegerField(default=0)
    output_tokens_done = models.BigIntegerField(default=0)
    recent_output_tokens_per_second = models.FloatField(null=True, blank=True)
    gpu = models.JSONField(null=True, blank=True, help_text="Memory, utilisation, temperature.")

    # Workers silent for longer than this drop out of the lists (their rows stay).
    FORGET_AFTER = timedelta(hours=1)

    objects = WorkerQuerySet.as_manager()

    class Meta:
        app_label = "jobs"
        ordering = ["-last_heartbeat"]

    def __str__(self) -> str:
        return f"{self.worker_id} ({self.state})"

    @staticmethod
    def stale_after() -> timedelta:
        return timedelta(seconds=live.get("WORKER_HEARTBEAT_SECONDS") * 3)

    @property
    def is_alive(self) -> bool:
        """Recent heartbeat and not stopped: the same rule as ``Worker.objects.alive()``."""
        recent = self.last_heartbeat >= timezone.now() - self.stale_after()
        return recent and self.state != self.State.STOPPED
