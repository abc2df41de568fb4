"""Registered models: what clients may name in ``"model"`` and how the engine loads each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import models
from django.utils import timezone

from models_registry.builtin import BUILTIN_PATH, converted_folder, resolve_path


class ModelQuerySet(models.QuerySet):
    def active(self) -> ModelQuerySet:
        return self.filter(is_active=True)


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

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.name,
            "object": "model",
            "created": int(self.created_at.timestamp()),
            "owned_by": self.owned_by,
        }
