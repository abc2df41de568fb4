"""The chunks workers lease, and their lease machine: claim, extend, release, requeue, done.

Every change of a chunk's lease is written here and nowhere else. Each is one conditional
``UPDATE`` (or a ``SELECT … FOR UPDATE SKIP LOCKED`` then an update in one transaction), so a
second worker, a re-delivered task or a recovery sweep loses the race cleanly: a chunk is never
run by two workers at once, and a dead worker's chunk becomes claimable when its lease runs out.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from batchserver import live
from jobs.models.batches import Batch, prefers_loaded


class BatchChunkQuerySet(models.QuerySet):
    def runnable(self, also_leased_to: str | None = None) -> BatchChunkQuerySet:
        """Chunks a worker may claim: pending, or leased to a worker whose lease ran out.

        ``also_leased_to``: a worker claiming takes back chunks still leased to itself. It runs
        one chunk at a time, so such a chunk was orphaned by a task of its own that died (or by
        a claim whose commit it never heard back about), and its heartbeat would extend that
        lease forever.
        """
        now = timezone.now()
        claimable = Q(status=BatchChunk.Status.PENDING) | Q(
            status=BatchChunk.Status.LEASED, leased_until__lt=now
        )
        if also_leased_to:
            claimable |= Q(status=BatchChunk.Status.LEASED, worker_id=also_leased_to)
        return self.filter(batch__status=Batch.Status.IN_PROGRESS, batch__paused=False).filter(
            claimable
        )

    def in_claim_order(self, loaded_model: str | None) -> BatchChunkQuerySet:
        """Batch.objects.in_claim_order's order, chunk by chunk within a batch."""
        return self.annotate(
            prefers_loaded=prefers_loaded([loaded_model or ""], "batch__model")
        ).order_by(*Batch.claim_order("batch__"), "index")

    def leased(self) -> BatchChunkQuerySet:
        return self.filter(status=BatchChunk.Status.LEASED)

    def running(self, now: datetime | None = None) -> BatchChunkQuerySet:
        """Leased to a worker that is still extending the lease."""
        return self.leased().filter(leased_until__gt=now or timezone.now())

    def orphaned(self, gone_worker_ids: list[str], now: datetime | None = None):
        """Leased to a gone worker, or whose lease ran out (or was never set)."""
        now = now or timezone.now()
        return self.leased().filter(
            Q(worker_id__in=gone_worker_ids)
            | Q(leased_until__lt=now)
            | Q(leased_until__isnull=True)
        )

    def extend_leases(self, worker_id: str, until: datetime) -> int:
        """The heartbeat: push the live leases of ``worker_id`` to ``until``."""
        return (
            self.leased()
            .filter(worker_id=worker_id, leased_until__gt=timezone.now())
            .update(leased_until=until)
        )

    def requeue(self) -> int:
        """Make these chunks claimable now (a worker that commits first still wins)."""
        return self.leased().update(
            status=BatchChunk.Status.PENDING, worker_id="", leased_until=None
        )

    def finish(self) -> int:
        """Mark every chunk not yet done as done (the batch is being closed out)."""
        return self.exclude(status=BatchChunk.Status.DONE).update(
            status=BatchChunk.Status.DONE, leased_until=None
        )


class BatchChunkManager(models.Manager.from_queryset(BatchChunkQuerySet)):  # type: ignore[misc]
    def claim_next(self, worker_id: str, loaded_model: str | None) -> BatchChunk | None:
        """Lease the next chunk to ``worker_id``: highest priority, loaded model, oldest."""
        with transaction.atomic():
            chunk = (
                self.get_queryset()
                .runnable(also_leased_to=worker_id)
                .select_for_update(skip_locked=True, of=("self",))
                .in_claim_order(loaded_model)
                .first()
            )
            if chunk is None:
                return None
            self.filter(pk=chunk.pk).update(
                status=BatchChunk.Status.LEASED,
                worker_id=worker_id,
                leased_until=BatchChunk.lease_from_now(),
                attempts=F("attempts") + 1,
            )
        return self.select_related("batch").get(pk=chunk.pk)


class BatchChunk(models.Model):
    """A slice of a batch's requests that one worker leases, runs and commits at once."""

    class Status(models.TextChoices):
        PENDING = "pending"
        LEASED = "leased"
        DONE = "done"

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    worker_id = models.CharField(max_length=100, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    objects = BatchChunkManager()

    class Meta:
        app_label = "jobs"
        constraints = [
            models.UniqueConstraint(fields=["batch", "index"], name="uniq_chunk_per_batch"),
        ]
        indexes = [models.Index(fields=["status", "leased_until"])]

    def __str__(self) -> str:
        return f"{self.batch_id}#{self.index} ({self.status})"

    @staticmethod
    def lease_from_now() -> datetime:
        return timezone.now() + timedelta(seconds=live.get("BATCH_LEASE_SECONDS"))

    def release(self) -> bool:
        """Give the chunk back unfinished (its run failed): claimable again at once."""
        return bool(
            BatchChunk.objects.filter(pk=self.pk, status=self.Status.LEASED).update(
                status=self.Status.PENDING, leased_until=None, worker_id=""
            )
        )

    def back_off(self, until: datetime) -> bool:
        """Claimable again only after ``until`` (a model that failed to load), without this
        attempt counting. Leased to no worker, so no heartbeat extends it and no worker takes
        it back early: the lease doubles as the back-off timer."""
        return bool(
            BatchChunk.objects.filter(pk=self.pk, status=self.Status.LEASED).update(
                leased_until=until, attempts=F("attempts") - 1, worker_id=""
            )
        )

    def mark_done(self) -> None:
        BatchChunk.objects.filter(pk=self.pk).update(status=self.Status.DONE, leased_until=None)
