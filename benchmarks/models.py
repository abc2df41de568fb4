"""Benchmark datasets, prices, runs and their stored results.

A run never talks to the engine: it creates ordinary batches (owned by the console key) one
after another, and reads what they produced through ``jobs.services``. What is stored here is
the plan (``RunBatch``), the figures per model (``ModelResult``) and every answer with its
scores (``Sample``), so a comparison page is a read of these tables.
"""

from __future__ import annotations

from typing import Any

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone


class Dataset(models.Model):
    """A named list of chat prompts, each with an optional reference answer and tags."""

    class Source(models.TextChoices):
        UPLOAD = "upload", "Uploaded JSONL"
        FILE = "file", "A stored file (e.g. a curation export)"
        BUILTIN = "builtin", "Shipped with batchserver"

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.UPLOAD)
    source_file_id = models.CharField(max_length=64, blank=True)
    item_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DatasetItem(models.Model):
    """One prompt of a dataset: the line ``{"id", "messages", "reference", "tags"}``."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField(help_text="0-based position in the dataset.")
    item_id = models.CharField(max_length=64, help_text="The line's id, or its line number.")
    messages = models.JSONField()
    reference = models.TextField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["dataset", "index"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "index"], name="uniq_item_index"),
            models.UniqueConstraint(fields=["dataset", "item_id"], name="uniq_item_id"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.item_id}"

    def prompt_text(self) -> str:
        """The last user message, for tables that show one line per prompt."""
        users = [m for m in self.messages if m.get("role") == "user"]
        content = (users or self.messages or [{}])[-1].get("content", "")
        return content if isinstance(content, str) else str(content)


PRICE = {"max_digits": 14, "decimal_places": 6, "validators": [MinValueValidator(0)]}


class GpuPrice(models.Model):
    """What one hour of a GPU kind costs the operator (self-hosted cost of a run)."""

    kind = models.CharField(max_length=100, unique=True, help_text="e.g. A100-80GB, L4, cpu-2")
    hourly_price = models.DecimalField(help_text="Price of one hour, in your currency.", **PRICE)

    class Meta:
        ordering = ["kind"]
        verbose_name = "GPU price"

    def __str__(self) -> str:
        return f"{self.kind}: {self.hourly_price}/h"


class CloudPrice(models.Model):
    """A cloud batch API's price per million tokens, to set beside the self-hosted cost."""

    name = models.CharField(max_length=100, unique=True, help_text="e.g. gpt-4o-mini batch")
    input_per_million = models.DecimalField(help_text="Price of 1M input tokens.", **PRICE)
    output_per_million = models.DecimalField(help_text="Price of 1M output tokens.", **PRICE)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RunQuerySet(models.QuerySet):
    def active(self) -> RunQuerySet:
        return self.filter(status__in=Run.ACTIVE)


class Run(models.Model):
    """A benchmark run: a dataset, models, sampling settings and repetitions, run as batches."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"  # no model produced a single answer
        CANCELLING = "cancelling"
        CANCELLED = "cancelled"

    S = Status
    ACTIVE = (S.QUEUED, S.RUNNING, S.CANCELLING)
    TRANSITIONS: dict[str, tuple[str, ...]] = {
        S.QUEUED: (S.RUNNING, S.CANCELLING, S.COMPLETED, S.FAILED),
        S.RUNNING: (S.COMPLETED, S.FAILED, S.CANCELLING),
        S.CANCELLING: (S.CANCELLED,),
    }

    name = models.CharField(max_length=200, blank=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="runs")
    model_names = models.JSONField(help_text="Model names, in the order they run.")
    sampling = models.JSONField(default=dict, help_text="temperature, max_tokens, top_p, seed")
    repetitions = models.PositiveSmallIntegerField(default=1)
    scorers = models.JSONField(default=list)
    scorer_options = models.JSONField(default=dict, blank=True)
    gpu_kind = models.CharField(max_length=100, blank=True)
    cloud_price = models.ForeignKey(
        CloudPrice, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=S.QUEUED)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    def transition(self, new: str, **fields: Any) -> bool:
        """Move to ``new`` if still in the status this object holds (compare-and-swap)."""
        old = self.status
        if new not in self.TRANSITIONS.get(old, ()):
            return False
        if new in (self.S.COMPLETED, self.S.FAILED, self.S.CANCELLED):
            fields.setdefault("ended_at", timezone.now())
        if new == self.S.RUNNING:
            fields.setdefault("started_at", timezone.now())
        if not Run.objects.filter(pk=self.pk, status=old).update(status=new, **fields):
            self.refresh_from_db()
            return False
        self.status = new
        for name, value in fields.items():
            setattr(self, name, value)
        return True


class RunBatch(models.Model):
    """One planned batch of a run: a model and a repetition, started when its turn comes."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="batches")
    position = models.PositiveIntegerField()
    model = models.CharField(max_length=200)
    repetition = models.PositiveSmallIntegerField()
    batch_id = models.CharField(max_length=40, blank=True, db_index=True)
    batch_status = models.CharField(max_length=16, blank=True, help_text="Once it ended.")
    skipped = models.BooleanField(default=False, help_text="Never started (cancel, failed model).")

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="uniq_run_batch_position")
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} #{self.position} {self.model} r{self.repetition}"

    @property
    def started(self) -> bool:
        return bool(self.batch_id)

    @property
    def ended(self) -> bool:
        return bool(self.batch_status) or self.skipped


class ModelResult(models.Model):
    """The figures of one model in one run: speed, latency, errors, quality and cost."""

    class Status(models.TextChoices):
        PENDING = "pending"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="results")
    position = models.PositiveSmallIntegerField()
    model = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    requests = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    wall_seconds = models.FloatField(null=True, blank=True)
    requests_per_second = models.FloatField(null=True, blank=True)
    output_tokens_per_second = models.FloatField(null=True, blank=True)
    total_tokens_per_second = models.FloatField(null=True, blank=True)
    latency_p50_ms = models.FloatField(null=True, blank=True)
    latency_p95_ms = models.FloatField(null=True, blank=True)
    quality = models.JSONField(default=dict, blank=True, help_text="Mean score per scorer.")
    repetition_figures = models.JSONField(default=list, blank=True)
    hourly_price = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    gpu_cost = models.FloatField(null=True, blank=True)
    cost_per_million_tokens = models.FloatField(null=True, blank=True)
    cloud_cost = models.FloatField(null=True, blank=True)
    cloud_cost_per_million_tokens = models.FloatField(null=True, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "model"], name="uniq_result_per_model")
        ]

    def __str__(self) -> str:
        return f"run {self.run_id}: {self.model} ({self.status})"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Sample(models.Model):
    """One model's answer to one prompt (one repetition), with its score per scorer."""

    result = models.ForeignKey(ModelResult, on_delete=models.CASCADE, related_name="samples")
    item = models.ForeignKey(DatasetItem, on_delete=models.CASCADE, related_name="+")
    repetition = models.PositiveSmallIntegerField(default=1)
    answer = models.TextField(null=True, blank=True)
    error = models.TextField(blank=True)
    scores = models.JSONField(default=dict, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["result", "item__index", "repetition"]
        constraints = [
            models.UniqueConstraint(
                fields=["result", "item", "repetition"], name="uniq_sample_per_item"
            )
        ]

    def __str__(self) -> str:
        return f"{self.result} item {self.item_id} r{self.repetition}"
