"""Reads and writes of the registry that other apps call."""

from __future__ import annotations

from django.db.models import F, Value
from django.db.models.functions import Coalesce

from models_registry.models import Model

# Weight of the newest chunk in the moving average of a model's measured throughput.
THROUGHPUT_SMOOTHING = 0.3


def find_active_model(name: str) -> Model | None:
    """The active model a batch line names, or None."""
    return Model.objects.active().filter(name=name).first()


def list_active_models(kind: str | None = None) -> list[str]:
    """Names of the models a batch may name now (of one ``kind``, when given), sorted."""
    models = Model.objects.active()
    if kind is not None:
        models = models.filter(kind=kind)
    return sorted(models.values_list("name", flat=True))


def register_model(name: str, path: str = "", kind: str = Model.Kind.GENERATE, **settings) -> Model:
    """Create or update a registry entry (used by set-up commands and tests)."""
    model, _ = Model.objects.update_or_create(
        name=name, defaults={"path": path, "kind": kind, "is_active": True, **settings}
    )
    return model


ENGINE_SETTINGS = (
    "dtype",
    "max_model_len",
    "gpu_memory_utilization",
    "tensor_parallel_size",
    "quantization",
    "enforce_eager",
    "cpu_kvcache_space_gib",
    "extra_args",
)


def register_version(
    *,
    name: str,
    path: str,
    parent: Model,
    origin: str = Model.Origin.FINE_TUNED,
    owned_by: str | None = None,
    description: str = "",
    **settings,
) -> Model:
    """Register new weights made from ``parent`` (e.g. a merged fine-tune) as its next version.

    The new model inherits the parent's kind and engine settings (``settings`` override them);
    its version is one more than the newest in the parent's lineage. Call it only once the
    folder at ``path`` is complete: a registered model is offered to clients at once.
    """
    inherited = {field: getattr(parent, field) for field in ENGINE_SETTINGS}
    lineage_versions = Model.objects.filter(parent=parent).values_list("version", flat=True)
    version = max([parent.version, *lineage_versions]) + 1
    return Model.objects.create(
        name=name,
        path=path,
        kind=parent.kind,
        parent=parent,
        origin=origin,
        version=version,
        owned_by=owned_by or parent.owned_by,
        description=description,
        **{**inherited, **settings},
    )


def record_throughput(model_name: str, output_tokens: int, seconds: float) -> None:
    """Fold one chunk's output tokens per second into its model's moving average.

    One UPDATE, so workers that finish chunks at the same time cannot lose each other's figure.
    Chunks without output tokens (embeddings, failed chunks) say nothing about generation speed.
    """
    if not model_name or output_tokens <= 0 or seconds <= 0:
        return
    measured = output_tokens / seconds
    a = THROUGHPUT_SMOOTHING
    Model.objects.filter(name=model_name).update(
        measured_output_tokens_per_second=Coalesce(
            F("measured_output_tokens_per_second") * (1 - a) + Value(a * measured),
            Value(measured),
        )
    )


def model_throughputs(names: set[str] | None = None) -> dict[str, float]:
    """Measured output tokens per second by model name (models never measured are absent)."""
    queryset = Model.objects.filter(measured_output_tokens_per_second__isnull=False)
    if names is not None:
        queryset = queryset.filter(name__in=names)
    return dict(queryset.values_list("name", "measured_output_tokens_per_second"))


def seconds_for(output_tokens: float, tokens_per_second: float | None) -> float | None:
    if not tokens_per_second:
        return None
    return round(output_tokens / tokens_per_second, 1)
