"""Batches, one row per input line, and the chunks workers lease.

Job state lives here, never in django-q2's task table: a task may be delivered twice, and every
write below is conditional on the state it expects, so a second delivery finds its work done.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import models, transaction
from django.db.models import Case, IntegerField, Value, When
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce
from django.utils import timezone

from batchserver.errors import Conflict
from batchserver.models import ApiKey
from jobs import signals
from jobs.ids import new_batch_id
from jobs.models.files import File, _ts


class InvalidTransition(Conflict):
    """A status change the state machine does not allow (e.g. cancelling a completed batch)."""

    default_code = "invalid_transition"


def prefers_loaded(loaded: Iterable[str], field: str = "model") -> Combinable:
    """0 for work on a model some worker already has loaded, else 1 (fewer swaps first)."""
    names = [name for name in loaded if name]
    if not names:
        return Value(1, output_field=IntegerField())
    return Case(
        When(**{f"{field}__in": names}, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )


class BatchQuerySet(models.QuerySet):
    def owned_by(self, key: ApiKey) -> BatchQuerySet:
        return self.filter(owner=key)

    def active(self) -> BatchQuerySet:
        return self.filter(status__in=Batch.ACTIVE)

    def past_window(self, now: datetime | None = None) -> BatchQuerySet:
        return self.filter(
            status__in=(Batch.Status.VALIDATING, Batch.Status.IN_PROGRESS),
            expires_at__lte=now or timezone.now(),
        )

    def finished(self) -> BatchQuerySet:
        return self.filter(status__in=Batch.TERMINAL)

    def purgeable(self, ended_before: datetime) -> BatchQuerySet:
        """Ended before ``ended_before`` and not purged yet; half-purged ones first."""
        return (
            self.finished()
            .with_ended_at()
            .filter(ended__lt=ended_before, purged_at__isnull=True)
            .order_by(models.F("purge_started_at").asc(nulls_last=True), "ended", "id")
        )

    def created_between(
        self, after: datetime | None = None, before: datetime | None = None
    ) -> BatchQuerySet:
        queryset = self
        if after is not None:
            queryset = queryset.filter(created_at__gte=after)
        if before is not None:
            queryset = queryset.filter(created_at__lt=before)
        return queryset

    def with_ended_at(self) -> BatchQuerySet:
        """Annotate ``ended``: when the batch reached its terminal status (None while active).

        The same rule as ``Batch.ended_at``, for filters and aggregates in the database.
        """
        return self.annotate(
            ended=Coalesce("completed_at", "failed_at", "cancelled_at", "expired_at")
        )

    def in_claim_order(self, loaded: Iterable[str] = ()) -> BatchQuerySet:
        """Active batches in the order workers take them: finishing ones first (they hold no GPU
        work), then ``Batch.CLAIM_ORDER``, paused ones last."""
        S = Batch.Status
        phase = Case(
            When(status__in=(S.FINALIZING, S.CANCELLING), then=Value(0)),
            When(paused=True, then=Value(2)),
            default=Value(1),
            output_field=IntegerField(),
        )
        return self.annotate(phase=phase, prefers_loaded=prefers_loaded(loaded)).order_by(
            "phase", *Batch.claim_order()
        )


class Batch(models.Model):
    """A batch job with OpenAI's fields, plus priority, progress and lineage of our own."""

    class Status(models.TextChoices):
        VALIDATING = "validating"
        FAILED = "failed"
        IN_PROGRESS = "in_progress"
        FINALIZING = "finalizing"
        COMPLETED = "completed"
        EXPIRED = "expired"
        CANCELLING = "cancelling"
        CANCELLED = "cancelled"

    S = Status
    TRANSITIONS: dict[str, tuple[str, ...]] = {
        S.VALIDATING: (S.IN_PROGRESS, S.FAILED, S.CANCELLING, S.EXPIRED),
        # in_progress -> failed only when the batch's model cannot be loaded at all.
        S.IN_PROGRESS: (S.FINALIZING, S.CANCELLING, S.EXPIRED, S.FAILED),
        S.FINALIZING: (S.COMPLETED,),
        S.CANCELLING: (S.CANCELLED,),
    }
    TIMESTAMPS = {
        S.IN_PROGRESS: "in_progress_at",
        S.FAILED: "failed_at",
        S.FINALIZING: "finalizing_at",
        S.COMPLETED: "completed_at",
        S.EXPIRED: "expired_at",
        S.CANCELLING: "cancelling_at",
        S.CANCELLED: "cancelled_at",
    }
    ACTIVE = (S.VALIDATING, S.IN_PROGRESS, S.FINALIZING, S.CANCELLING)
    TERMINAL = (S.COMPLETED, S.FAILED, S.EXPIRED, S.CANCELLED)
    # Statuses a batch may be paused, resumed or re-prioritised in: queued or running.
    SCHEDULABLE = (S.VALIDATING, S.IN_PROGRESS)
    # The order workers take work in, written once: the chunk claim and the queue both use it
    # (``claim_order``; ``prefers_loaded`` is 0 for a model some worker has loaded).
    CLAIM_ORDER = ("-priority", "prefers_loaded", "created_at", "id")
    # Policies: a model that fails to load this often fails its batch; a chunk whose run fails
    # this often fails its rows; a batch still finalizing after FINALIZE_GRACE_SECONDS lost its
    # worker mid-assembly and is assembled again (the operator's reset uses a shorter grace).
    MAX_LOAD_ATTEMPTS = 3
    MAX_CHUNK_ATTEMPTS = 3
    FINALIZE_GRACE_SECONDS = 600.0
    FINALIZE_FAILED_NOTE = "writing the output files failed"

    id = models.CharField(primary_key=True, max_length=40, default=new_batch_id, editable=False)
    owner = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="batches")
    endpoint = models.CharField(max_length=64)
    # Files may be deleted while the batch keeps their ids (as OpenAI does): no DB constraint.
    input_file = models.ForeignKey(
        File, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    output_file = models.ForeignKey(
        File,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    error_file = models.ForeignKey(
        File,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    completion_window = models.CharField(max_length=16)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=S.VALIDATING, db_index=True
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    expires_at = models.DateTimeField()
    in_progress_at = models.DateTimeField(null=True, blank=True)
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    request_total = models.PositiveIntegerField(default=0)
    request_completed = models.PositiveIntegerField(default=0)
    request_failed = models.PositiveIntegerField(default=0)
    metadata = models.JSONField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    errors = models.JSONField(null=True, blank=True)
    output_expires_after = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds after creation that output files expire."
    )
    priority = models.IntegerField(default=0, db_index=True)
    paused = models.BooleanField(default=False, help_text="Extension: no new chunk starts.")
    webhook_url = models.URLField(max_length=500, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True, db_index=True)
    load_failures = models.PositiveSmallIntegerField(
        default=0, help_text="Failed attempts to load this batch's model."
    )
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children"
    )
    note = models.TextField(
        blank=True, help_text="Why the worker failed or retried, for operators."
    )
    # Data retention (jobs/services/retention.py): prompts and answers deleted, summary kept.
    purge_started_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)

    objects = BatchQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["owner", "created_at"])]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @classmethod
    def claim_order(cls, via: str = "") -> list[str]:
        """``CLAIM_ORDER`` as ORDER BY terms, for batches or through a relation (``batch__``)."""
        terms = []
        for term in cls.CLAIM_ORDER:
            name = term.lstrip("-")
            field = name if name == "prefers_loaded" else via + name
            terms.append(("-" if term.startswith("-") else "") + field)
        return terms

    @property
    def done(self) -> int:
        """Requests answered or given up so far."""
        return self.request_completed + self.request_failed

    @property
    def ended_at(self) -> datetime | None:
        """When the batch reached its terminal status (None while it is active)."""
        return self.completed_at or self.failed_at or self.cancelled_at or self.expired_at

    def stuck_finalizing(self, grace: float | None = None) -> bool:
        """Finalizing for longer than ``grace`` seconds, or its last assembly failed."""
        if self.status != self.Status.FINALIZING:
            return False
        if self.note.startswith(self.FINALIZE_FAILED_NOTE):
            return True
        grace = self.FINALIZE_GRACE_SECONDS if grace is None else grace
        started = self.finalizing_at
        return started is not None and (timezone.now() - started).total_seconds() > grace

    def set_note(self, text: str) -> None:
        """Why the worker retried or failed something, for operators (the one writer)."""
        Batch.objects.filter(pk=self.pk).update(note=text)
        self.note = text

    @property
    def purge_state(self) -> str:
        """ "" (data kept), "purging" (started, not finished: answers incomplete), "purged"."""
        if self.purged_at is not None:
            return "purged"
        return "purging" if self.purge_started_at is not None else ""

    def start_purge(self) -> None:
        """Mark the purge as started (kept if it was: a resumed purge keeps its first time)."""
        Batch.objects.filter(pk=self.pk, purge_started_at__isnull=True).update(
            purge_started_at=timezone.now()
        )

    def finish_purge(self) -> None:
        now = timezone.now()
        Batch.objects.filter(pk=self.pk).update(purged_at=now)
        self.purged_at = now

    def set_paused(self, paused: bool) -> bool:
        """Pause or resume while queued or running; False if the batch has moved on."""
        return self._schedule_update(paused=paused)

    def set_priority(self, priority: int) -> bool:
        """Re-prioritise while queued or running; False if the batch has moved on."""
        return self._schedule_update(priority=priority)

    def _schedule_update(self, **fields: Any) -> bool:
        updated = Batch.objects.filter(pk=self.pk, status__in=self.SCHEDULABLE).update(**fields)
        self.refresh_from_db()
        return bool(updated)

    def transition(self, new: str, **fields: Any) -> bool:
        """Move to ``new`` if still in the status this object holds (compare-and-swap).

        Returns False when another process moved the batch first; raises InvalidTransition when
        the state machine forbids the move from the current status.
        """
        old = self.status
        if new not in self.TRANSITIONS.get(old, ()):
            raise InvalidTransition(f"A batch in status '{old}' cannot become '{new}'.")
        now = timezone.now()
        if new in self.TIMESTAMPS:
            fields[self.TIMESTAMPS[new]] = now
        updated = Batch.objects.filter(pk=self.pk, status=old).update(status=new, **fields)
        if not updated:
            self.refresh_from_db()
            return False
        self.status = new
        for name, value in fields.items():
            if not hasattr(value, "resolve_expression"):
                setattr(self, name, value)
        batch_id = self.pk
        transaction.on_commit(
            lambda: signals.batch_status_changed.send(
                sender=Batch, batch_id=batch_id, old=old, new=new
            )
        )
        return True

    def usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + self.output_tokens,
        }

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": _ts(self.created_at),
            "in_progress_at": _ts(self.in_progress_at),
            "expires_at": _ts(self.expires_at),
            "finalizing_at": _ts(self.finalizing_at),
            "completed_at": _ts(self.completed_at),
            "failed_at": _ts(self.failed_at),
            "expired_at": _ts(self.expired_at),
            "cancelling_at": _ts(self.cancelling_at),
            "cancelled_at": _ts(self.cancelled_at),
            "request_counts": {
                "total": self.request_total,
                "completed": self.request_completed,
                "failed": self.request_failed,
            },
            "metadata": self.metadata,
            "model": self.model or None,
            "usage": self.usage(),
            "priority": self.priority,
            "paused": self.paused,
            "parent_batch_id": self.parent_id,
        }


class BatchRequest(models.Model):
    """One input line: what makes resume exact, cancel partial and statistics honest."""

    class Status(models.TextChoices):
        PENDING = "pending"
        COMPLETED = "completed"  # the engine answered 2xx: output file
        FAILED = "failed"  # the engine answered an error: error file
        EXPIRED = "expired"  # the window closed first: error file, code batch_expired
        CANCELLED = "cancelled"  # the batch was cancelled first: error file, batch_cancelled

    # No index of its own: the three indexes below start with batch and serve its lookups; a
    # fourth (and Django's LIKE twin of it) was written to for every row copied in and every
    # result, a third of the index work of the two hottest statements.
    batch = models.ForeignKey(
        Batch, on_delete=models.CASCADE, related_name="requests", db_index=False
    )
    line = models.PositiveIntegerField(help_text="Physical line number in the input file.")
    custom_id = models.CharField(max_length=64)
    chunk = models.PositiveIntegerField()
    # The line's body as JSON text: stored as is, with nothing for the database to parse.
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    public_id = models.CharField(max_length=48, blank=True)
    request_id = models.CharField(max_length=48, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # Kept as the engine's JSON text, so key order and bytes are exactly what it answered.
    response_body = models.TextField(blank=True)
    error = models.JSONField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="From the chunk's submission to the engine to this answer."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["batch", "custom_id"], name="uniq_custom_id_per_batch"),
        ]
        indexes = [
            models.Index(fields=["batch", "chunk"]),
            models.Index(fields=["batch", "line"]),
        ]

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.custom_id}"
