"""Samples of the server's figures over time, for the dashboard's charts."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class MetricSample(models.Model):
    """What ``jobs.selectors.totals`` answered at one minute: counters, queue, workers, GPUs.

    Taken every minute by the ``operations: sample metrics`` schedule; a week is kept. Rates
    (requests/s, tokens/s, error rate) are differences between consecutive samples.
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    queued_batches = models.IntegerField(default=0)
    running_batches = models.IntegerField(default=0)
    pending_requests = models.BigIntegerField(default=0)
    requests_completed = models.BigIntegerField(default=0)
    requests_failed = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    workers_alive = models.IntegerField(default=0)
    engine_loads = models.IntegerField(default=0, help_text="Model loads since the last sample.")
    loaded_models = models.JSONField(default=list)
    gpus = models.JSONField(default=list)

    class Meta:
        ordering = ["at"]

    def __str__(self) -> str:
        return f"sample at {self.at:%Y-%m-%d %H:%M}"
