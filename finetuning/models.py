"""Fine-tuning jobs, their events and checkpoints, in OpenAI's shapes.

A job's status changes only through ``FineTuningJob.transition`` (a compare-and-swap), and its
lease (which worker trains it, until when) only through the queryset methods below, so a second
worker, a re-delivered task or a cancel racing a finishing slice loses cleanly.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from batchserver.models import ApiKey


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def new_job_id() -> str:
    return "ftjob-" + secrets.token_hex(12)


def new_event_id() -> str:
    return "ftevent-" + secrets.token_hex(12)


def new_checkpoint_id() -> str:
    return "ftckpt_" + secrets.token_hex(12)


class InvalidTransition(Exception):
    """The state machine forbids this move from the job's current status."""


class FineTuningJobQuerySet(models.QuerySet):
    def owned_by(self, key: ApiKey) -> FineTuningJobQuerySet:
        return self.filter(owner=key)

    def claimable(self, now: datetime | None = None) -> FineTuningJobQuerySet:
        """Queued jobs, and running ones no live worker holds (a slice ended, a worker died)."""
        now = now or timezone.now()
        free = Q(leased_until__isnull=True) | Q(leased_until__lt=now)
        return self.filter(Q(status=FineTuningJob.Status.QUEUED) | Q(free, status="running"))

    def in_claim_order(self) -> FineTuningJobQuerySet:
        return self.order_by("-priority", "created_at", "id")

    def claim_next(self, worker_id: str, lease_seconds: float) -> FineTuningJob | None:
        """Lease the best claimable job to ``worker_id`` (``SKIP LOCKED``: one winner)."""
        now = timezone.now()
        with transaction.atomic():
            job = self.claimable(now).in_claim_order().select_for_update(skip_locked=True).first()
            if job is None:
                return None
            fields: dict[str, Any] = {
                "status": FineTuningJob.Status.RUNNING,
                "worker_id": worker_id,
                "leased_until": now + timedelta(seconds=lease_seconds),
                "started_at": job.started_at or now,
            }
            FineTuningJob.objects.filter(pk=job.pk).update(**fields)
            for name, value in fields.items():
                setattr(job, name, value)
            return job

    def extend_leases(self, worker_id: str, until: datetime) -> int:
        active = (FineTuningJob.Status.RUNNING, FineTuningJob.Status.PAUSING)
        return self.filter(worker_id=worker_id, status__in=active).update(leased_until=until)

    def release(self, job_id: str, worker_id: str) -> int:
        """Give a job back after a slice: claimable at once by any worker."""
        return self.filter(pk=job_id, worker_id=worker_id).update(worker_id="", leased_until=None)

    def orphaned(self, gone_worker_ids: list[str]) -> FineTuningJobQuerySet:
        return self.filter(worker_id__in=gone_worker_ids).exclude(worker_id="")

    def unfinished(self) -> FineTuningJobQuerySet:
        return self.exclude(status__in=FineTuningJob.FINAL)


class FineTuningJob(models.Model):
    """One OpenAI fine-tuning job: a LoRA trained on a base model, merged into a new version."""

    class Status(models.TextChoices):
        VALIDATING_FILES = "validating_files"
        QUEUED = "queued"
        RUNNING = "running"
        PAUSING = "pausing"
        PAUSED = "paused"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    S = Status
    TRANSITIONS: dict[str, tuple[str, ...]] = {
        S.VALIDATING_FILES: (S.QUEUED, S.FAILED, S.CANCELLED),
        S.QUEUED: (S.RUNNING, S.PAUSED, S.FAILED, S.CANCELLED),
        S.RUNNING: (S.SUCCEEDED, S.FAILED, S.CANCELLED, S.PAUSING),
        S.PAUSING: (S.PAUSED, S.FAILED, S.CANCELLED, S.SUCCEEDED),
        S.PAUSED: (S.QUEUED, S.CANCELLED),
    }
    FINAL = (S.SUCCEEDED, S.FAILED, S.CANCELLED)

    id = models.CharField(primary_key=True, max_length=40, default=new_job_id, editable=False)
    owner = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="fine_tuning_jobs")
    model = models.CharField(max_length=200, help_text="The base model.")
    training_file = models.CharField(max_length=40)
    validation_file = models.CharField(max_length=40, blank=True)
    suffix = models.CharField(max_length=64, blank=True)
    seed = models.IntegerField(default=0)
    metadata = models.JSONField(null=True, blank=True)
    method = models.CharField(max_length=16, default="supervised")
    hyperparameters = models.JSONField(default=dict, help_text="As requested ('auto' or numbers).")
    n_epochs = models.PositiveIntegerField(null=True, blank=True)
    batch_size = models.PositiveIntegerField(null=True, blank=True)
    learning_rate_multiplier = models.FloatField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.VALIDATING_FILES, db_index=True
    )
    error = models.JSONField(null=True, blank=True)
    fine_tuned_model = models.CharField(max_length=300, blank=True)
    result_files = models.JSONField(default=list, blank=True)
    trained_tokens = models.BigIntegerField(null=True, blank=True)
    train_examples = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    step = models.PositiveIntegerField(default=0)
    train_loss = models.FloatField(null=True, blank=True)
    training_seconds = models.FloatField(default=0.0, help_text="Time spent in training steps.")
    slices = models.PositiveIntegerField(default=0)
    priority = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    estimated_finish = models.DateTimeField(null=True, blank=True)
    worker_id = models.CharField(max_length=200, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)

    objects = FineTuningJobQuerySet.as_manager()

    class Meta:
        db_table = "fine_tuning_jobs"
        indexes = [models.Index(fields=["owner", "created_at"])]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    def transition(self, new: str, **fields: Any) -> bool:
        """Move to ``new`` if still in the status this object holds (compare-and-swap).

        False when another process moved the job first; ``InvalidTransition`` when the state
        machine forbids the move.
        """
        old = self.status
        if new not in self.TRANSITIONS.get(old, ()):
            raise InvalidTransition(f"A fine-tuning job in status '{old}' cannot become '{new}'.")
        if new in self.FINAL:
            fields.setdefault("finished_at", timezone.now())
            fields.update(worker_id="", leased_until=None, estimated_finish=None)
        updated = FineTuningJob.objects.filter(pk=self.pk, status=old).update(status=new, **fields)
        if not updated:
            self.refresh_from_db()
            return False
        self.status = new
        for name, value in fields.items():
            setattr(self, name, value)
        return True

    def owner_slug(self) -> str:
        """The owner as the org part of model names: the key's name, slugified."""
        return slugify(self.owner.name)[:40] or f"key-{self.owner_id}"

    def model_name(self) -> str:
        """``ft:{base}:{owner}:{suffix}:{8-char id}``, OpenAI's shape (the suffix may be empty)."""
        return f"ft:{self.model}:{self.owner_slug()}:{self.suffix}:{self.id[-8:]}"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    def progress(self) -> float:
        """Share of the training steps done (1.0 once succeeded)."""
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        return self.step / self.total_steps if self.total_steps else 0.0

    def tokens_per_second(self) -> float | None:
        if not self.trained_tokens or not self.training_seconds:
            return None
        return self.trained_tokens / self.training_seconds

    def hyperparameters_out(self) -> dict[str, Any]:
        """Resolved values once validated, else what was asked ('auto' where not given)."""
        asked = self.hyperparameters or {}
        return {
            "batch_size": self.batch_size or asked.get("batch_size", "auto"),
            "learning_rate_multiplier": self.learning_rate_multiplier
            or asked.get("learning_rate_multiplier", "auto"),
            "n_epochs": self.n_epochs or asked.get("n_epochs", "auto"),
        }

    def as_openai(self) -> dict[str, Any]:
        hyper = self.hyperparameters_out()
        return {
            "id": self.id,
            "object": "fine_tuning.job",
            "created_at": _ts(self.created_at),
            "model": self.model,
            "organization_id": self.owner_slug(),
            "training_file": self.training_file,
            "validation_file": self.validation_file or None,
            "status": self.status,
            "error": self.error,
            "fine_tuned_model": self.fine_tuned_model or None,
            "finished_at": _ts(self.finished_at),
            "estimated_finish": _ts(self.estimated_finish),
            "hyperparameters": hyper,
            "result_files": list(self.result_files or []),
            "seed": self.seed,
            "trained_tokens": self.trained_tokens,
            "integrations": [],
            "metadata": self.metadata,
            "method": {"type": self.method, self.method: {"hyperparameters": hyper}},
            "suffix": self.suffix or None,
        }


class FineTuningEvent(models.Model):
    """A line of a job's log: a message, or the metrics of one step (``type=metrics``)."""

    class Level(models.TextChoices):
        INFO = "info"
        WARN = "warn"
        ERROR = "error"

    id = models.CharField(primary_key=True, max_length=40, default=new_event_id, editable=False)
    job = models.ForeignKey(FineTuningJob, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    message = models.TextField()
    type = models.CharField(max_length=16, default="message")
    data = models.JSONField(null=True, blank=True)
    step = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        db_table = "fine_tuning_events"
        indexes = [models.Index(fields=["job", "created_at"])]

    def __str__(self) -> str:
        return self.message

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "fine_tuning.job.event",
            "created_at": _ts(self.created_at),
            "level": self.level,
            "message": self.message,
            "type": self.type,
            "data": self.data or {},
        }


class FineTuningCheckpoint(models.Model):
    """A saved adapter at one step: resumable, and a model of its own once registered."""

    id = models.CharField(
        primary_key=True, max_length=40, default=new_checkpoint_id, editable=False
    )
    job = models.ForeignKey(FineTuningJob, on_delete=models.CASCADE, related_name="checkpoints")
    step_number = models.PositiveIntegerField()
    metrics = models.JSONField(default=dict)
    folder = models.CharField(max_length=500)
    registered_model = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "fine_tuning_checkpoints"
        constraints = [
            models.UniqueConstraint(fields=["job", "step_number"], name="one_checkpoint_per_step")
        ]

    def __str__(self) -> str:
        return f"{self.job_id} step {self.step_number}"

    @property
    def model_name(self) -> str:
        return f"{self.job.model_name()}:ckpt-step-{self.step_number}"

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "fine_tuning.job.checkpoint",
            "created_at": _ts(self.created_at),
            "fine_tuned_model_checkpoint": self.model_name,
            "fine_tuning_job_id": self.job_id,
            "step_number": self.step_number,
            "metrics": {"step": self.step_number, **(self.metrics or {})},
        }
