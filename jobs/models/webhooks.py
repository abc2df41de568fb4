"""Webhook messages about batches: one row per message, its attempts, and its dead letter.

The row is the message: its id is the Standard Webhooks ``webhook-id`` (``msg_…``), the same on
every retry and on a replay, so a receiver can drop duplicates. Whether and when the next attempt
runs is decided by ``status`` and ``next_attempt_at`` here, never by the task queue.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from batchserver.models import ApiKey
from jobs.ids import new_id
from jobs.models.batches import Batch
from jobs.models.files import _ts


def new_webhook_id() -> str:
    return new_id("msg_")


class WebhookDeliveryQuerySet(models.QuerySet):
    def owned_by(self, key: ApiKey) -> WebhookDeliveryQuerySet:
        return self.filter(batch__owner=key)

    def due(self, now=None) -> WebhookDeliveryQuerySet:
        return self.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now or timezone.now()
        )

    def dead(self) -> WebhookDeliveryQuerySet:
        return self.filter(status=WebhookDelivery.Status.DEAD)


class WebhookDelivery(models.Model):
    """One webhook message about a batch, retried with back-off until delivered or dead."""

    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for its next attempt (or being attempted)
        DELIVERED = "delivered"  # the receiver answered 2xx
        DEAD = "dead"  # every attempt failed, or the URL is refused: a dead letter

    class Event(models.TextChoices):
        COMPLETED = "batch.completed"
        FAILED = "batch.failed"
        CANCELLED = "batch.cancelled"
        EXPIRED = "batch.expired"
        PROGRESS = "batch.progress"

    id = models.CharField(
        primary_key=True,
        max_length=40,
        default=new_webhook_id,
        editable=False,
        help_text="The webhook-id header: the same on every retry and replay.",
    )
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="webhook_deliveries")
    event_type = models.CharField(max_length=32, choices=Event.choices)
    # One message per event (e.g. "batch.completed", "batch.progress:50"), however often a
    # signal is delivered.
    event_key = models.CharField(max_length=64)
    url = models.URLField(max_length=500)
    payload = models.JSONField()
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    history = models.JSONField(
        default=list, blank=True, help_text="One entry per attempt: when, status code, error."
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    dead_at = models.DateTimeField(null=True, blank=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["batch", "event_key"], name="uniq_webhook_event_per_batch"
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.id} {self.event_type} ({self.status})"

    def as_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "webhook.delivery",
            "batch_id": self.batch_id,
            "type": self.event_type,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error or None,
            "next_attempt_at": _ts(self.next_attempt_at)
            if self.status == self.Status.PENDING
            else None,
            "created_at": _ts(self.created_at),
            "delivered_at": _ts(self.delivered_at),
            "dead_at": _ts(self.dead_at),
            "payload": self.payload,
        }


class WebhookSubscription(models.Model):
    """Per-batch webhook options beyond the URL: progress events every ``progress_percent``."""

    batch = models.OneToOneField(
        Batch, on_delete=models.CASCADE, primary_key=True, related_name="webhook_subscription"
    )
    progress_percent = models.PositiveSmallIntegerField(
        help_text="Send batch.progress each time this many more percent of lines are done."
    )

    def __str__(self) -> str:
        return f"{self.batch_id}: progress every {self.progress_percent}%"
