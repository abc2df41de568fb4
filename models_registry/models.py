"""Registered models: what clients may name in ``"model"`` and how the engine loads each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import models
from django.utils import timezone

from models_registry.builtin import BUILTIN_PATH, converted_folder, resolve_path


class ModelQuerySet(models.QuerySet):
    def active(self) -> ModelQuerySet:
        """Registered and switched on: the worker may load it, operators may test it."""
        return self.filter(is_active=True)

    def offered(self) -> ModelQuerySet:
        """What clients may name: active, and not failed its test unless an operator forced it."""
        return self.active().filter(
            ~models.Q(test_status=Model.TestStatus.FAILED) | models.Q(test_forced=True)
        )


# What a peak memory figure is (the worker measures it: ``jobs.worker.engine.memory``).
PEAK_MEMORY_MEASURE = (
    "the highest sum of the resident memory (RSS) of the engine's process group (its host, "
    "vLLM's engine core and workers), sampled every 100 ms, plus the GPU memory it holds; "
    "pages the processes share count once per process"
)


class Model(models.Model):
    """One servable model with its per-model engine settings."""

    class Kind(models.TextChoices):
        GENERATE = "generate", "Text generation (chat, completions)"
        EMBED = "embed", "Embeddings"

    class Origin(models.TextChoices):
        ADDED = "added", "Added (a folder or a hub download)"
        CONVERTED = "converted", "Converted (from a GGUF file)"
        FINE_TUNED = "fine-tuned", "Fine-tuned (a LoRA merged into its parent)"
        VARIANT = "variant", "Variant (the parent's weights, other engine settings)"

    class TestStatus(models.TextChoices):
        UNTESTED = "untested", "Not tested"
        PASSED = "passed", "Passed its test"
        FAILED = "failed", "Failed its test"

    ENDPOINTS = {
        Kind.GENERATE: ("/v1/chat/completions", "/v1/completions"),
        Kind.EMBED: ("/v1/embeddings",),
    }

    name = models.CharField(max_length=200, unique=True, help_text="The id clients use.")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.GENERATE)
    path = models.CharField(
        max_length=500, blank=True, help_text="Local folder of the Hugging Face model vLLM loads."
    )
    owned_by = models.CharField(max_length=100, default="batchserver")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    dtype = models.CharField(max_length=16, default="auto", blank=True)
    max_model_len = models.PositiveIntegerField(null=True, blank=True)
    gpu_memory_utilization = models.FloatField(null=True, blank=True)
    tensor_parallel_size = models.PositiveSmallIntegerField(default=1)
    quantization = models.CharField(max_length=32, blank=True)
    enforce_eager = models.BooleanField(default=False)
    cpu_kvcache_space_gib = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="CPU builds only: KV-cache size in GiB."
    )
    extra_args = models.JSONField(
        default=dict, blank=True, help_text="More vLLM engine arguments, as a JSON object."
    )
    measured_output_tokens_per_second = models.FloatField(null=True, blank=True, editable=False)
    description = models.TextField(blank=True)
    # Lineage: where these weights come from. A version's parent is the model it was made from
    # (fine-tuned from, converted from); a variant's parent holds the same weights.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    version = models.PositiveIntegerField(default=1)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.ADDED)
    source = models.CharField(
        max_length=500,
        blank=True,
        help_text="Where the weights came from: a folder, a GGUF file, a hub id.",
    )
    # The last test decides whether clients are offered the model (``offered()``).
    test_status = models.CharField(
        max_length=16, choices=TestStatus.choices, default=TestStatus.UNTESTED, editable=False
    )
    test_forced = models.BooleanField(
        default=False, help_text="Offer the model to clients even though its last test failed."
    )
    # The last load any worker reported (``engine_loaded``): seconds to ready, engine memory
    # once ready, and the engine's peak memory since that load (``PEAK_MEMORY_MEASURE``),
    # raised by every run that went higher (``engine_peak_memory``).
    last_load_seconds = models.FloatField(null=True, blank=True, editable=False)
    last_load_memory_bytes = models.BigIntegerField(null=True, blank=True, editable=False)
    last_peak_memory_bytes = models.BigIntegerField(null=True, blank=True, editable=False)
    last_loaded_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ModelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def endpoints(self) -> tuple[str, ...]:
        return self.ENDPOINTS[self.Kind(self.kind)]

    def engine_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "dtype": self.dtype or "auto",
            "tensor_parallel_size": self.tensor_parallel_size,
            "enforce_eager": self.enforce_eager,
        }
        optional = {
            "max_model_len": self.max_model_len,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "quantization": self.quantization or None,
            "cpu_kvcache_space_gib": self.cpu_kvcache_space_gib,
        }
        settings.update({k: v for k, v in optional.items() if v is not None})
        if self.extra_args:
            settings["extra"] = dict(self.extra_args)
        return settings

    def existing_folder(self) -> Path | None:
        """The local folder if it is already there (never converting or downloading)."""
        if self.path == BUILTIN_PATH:
            return converted_folder()
        return Path(self.path) if self.path else None

    def local_path(self) -> str:
        """The folder the engine loads; resolving the built-in model may convert it (first use)."""
        return resolve_path(self.path)

    @property
    def base(self) -> Model:
        """The root of this model's lineage (itself when it has no parent)."""
        model = self
        while model.parent_id is not None and model.parent is not None:
            model = model.parent
        return model

    @property
    def is_offered(self) -> bool:
        return self.is_active and (self.test_status != self.TestStatus.FAILED or self.test_forced)

    def lineage(self) -> dict[str, Any]:
        """Where these weights come from, as ``/v1/models`` tells it (extension fields)."""
        return {
            "parent": self.parent.name if self.parent_id and self.parent else None,
            "version": self.version,
            "origin": self.origin,
            "base": self.base.name,
        }

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.name,
            "object": "model",
            "created": int(self.created_at.timestamp()),
            "owned_by": self.owned_by,
            **self.lineage(),
            "kind": self.kind,
            "test_status": self.test_status,
        }


class ModelTest(models.Model):
    """One test of a model: a few prompts run as an ordinary batch of the console key.

    ``queued`` (its batch is waiting or running) → ``passed`` | ``failed``. The figures are
    copied from what the worker measured: the load (``engine_loaded``), the batch's tokens and the
    engine's per-request latency; the answers are kept for the operator to read.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        PASSED = "passed"
        FAILED = "failed"

    TRANSITIONS = {Status.QUEUED: (Status.PASSED, Status.FAILED)}

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="tests")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    batch_id = models.CharField(max_length=64, blank=True, db_index=True)
    prompts = models.JSONField(default=list)
    answers = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    load_seconds = models.FloatField(null=True, blank=True)
    # The engine's peak over the load and this test's batch (``PEAK_MEMORY_MEASURE``), and its
    # memory once the model was ready.
    peak_memory_bytes = models.BigIntegerField(null=True, blank=True)
    ready_memory_bytes = models.BigIntegerField(null=True, blank=True)
    # False when the model was already loaded: the load figures are then those of its last load.
    loaded_for_test = models.BooleanField(default=False)
    output_tokens = models.PositiveIntegerField(default=0)
    output_tokens_per_second = models.FloatField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"test {self.pk} of {self.model_id}: {self.status}"

    def finish(self, status: str, **fields: Any) -> bool:
        """Record the outcome once (compare-and-swap): a second delivery of the end loses."""
        if status not in self.TRANSITIONS.get(self.Status(self.status), ()):
            return False
        fields["finished_at"] = timezone.now()
        updated = ModelTest.objects.filter(pk=self.pk, status=self.status).update(
            status=status, **fields
        )
        if updated:
            self.status = status
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(updated)

    @property
    def peak_memory_measure(self) -> str | None:
        """What ``peak_memory_bytes`` is, and over which span (None when not measured)."""
        if self.peak_memory_bytes is None:
            return None
        if self.loaded_for_test:
            return f"{PEAK_MEMORY_MEASURE}; over the load and this test's batch"
        return (
            f"{PEAK_MEMORY_MEASURE}; since the model's last load (before this test), "
            "every batch since and this test's included"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "object": "model.test",
            "model": self.model.name,
            "status": self.status,
            "batch_id": self.batch_id or None,
            "created_at": int(self.created_at.timestamp()),
            "finished_at": int(self.finished_at.timestamp()) if self.finished_at else None,
            "load_seconds": self.load_seconds,
            "peak_memory_bytes": self.peak_memory_bytes,
            "peak_memory_measure": self.peak_memory_measure,
            "ready_memory_bytes": self.ready_memory_bytes,
            "loaded_for_test": self.loaded_for_test,
            "output_tokens": self.output_tokens,
            "output_tokens_per_second": self.output_tokens_per_second,
            "answers": self.answers,
            "error": self.error or None,
        }


class ModelImport(models.Model):
    """Adding a model that takes time (a hub download, a GGUF conversion), with its progress.

    The registry row is created only at the end, once the files passed their checks; a failed
    import leaves its message here and no model. ``queued`` → ``downloading`` | ``converting``
    → ``checking`` → ``succeeded`` | ``failed``.
    """

    class Source(models.TextChoices):
        FOLDER = "folder", "A local Hugging Face folder"
        GGUF = "gguf", "A GGUF file (converted into the data folder)"
        HUB = "hub", "A Hugging Face hub repo id (downloaded into the data folder)"

    class Status(models.TextChoices):
        QUEUED = "queued"
        DOWNLOADING = "downloading"
        CONVERTING = "converting"
        CHECKING = "checking"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    ENDED = (Status.SUCCEEDED, Status.FAILED)
    TRANSITIONS = {
        Status.QUEUED: (Status.DOWNLOADING, Status.CONVERTING, Status.CHECKING, Status.FAILED),
        Status.DOWNLOADING: (Status.CHECKING, Status.FAILED),
        Status.CONVERTING: (Status.CHECKING, Status.FAILED),
        Status.CHECKING: (Status.SUCCEEDED, Status.FAILED),
        # A failed download is resumed by importing again: the files already there are kept.
        Status.FAILED: (Status.QUEUED,),
    }

    name = models.CharField(max_length=200)
    source_kind = models.CharField(max_length=16, choices=Source.choices)
    source = models.CharField(max_length=500)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    done_bytes = models.BigIntegerField(default=0)
    total_bytes = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    model = models.ForeignKey(Model, null=True, blank=True, on_delete=models.SET_NULL)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"import of {self.name}: {self.status}"

    @property
    def is_active(self) -> bool:
        return self.status not in self.ENDED

    @property
    def percent(self) -> int | None:
        if not self.total_bytes:
            return None
        return min(100, int(100 * self.done_bytes / self.total_bytes))

    def transition(self, new: str, **fields: Any) -> bool:
        """Move to ``new`` if the row still holds the status this object holds."""
        if new not in self.TRANSITIONS.get(self.Status(self.status), ()):
            return False
        if new in self.ENDED:
            fields["finished_at"] = timezone.now()
        updated = ModelImport.objects.filter(pk=self.pk, status=self.status).update(
            status=new, **fields
        )
        if updated:
            self.status = new
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(updated)

    def report_progress(self, done: int, total: int | None) -> None:
        """Bytes so far (one UPDATE; progress is informative, no state change)."""
        ModelImport.objects.filter(pk=self.pk).update(done_bytes=done, total_bytes=total)
        self.done_bytes, self.total_bytes = done, total

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "object": "model.import",
            "name": self.name,
            "source_kind": self.source_kind,
            "source": self.source,
            "status": self.status,
            "done_bytes": self.done_bytes,
            "total_bytes": self.total_bytes,
            "percent": self.percent,
            "error": self.error or None,
            "model": self.model.name if self.model_id and self.model else None,
            "created_at": int(self.created_at.timestamp()),
            "finished_at": int(self.finished_at.timestamp()) if self.finished_at else None,
        }
