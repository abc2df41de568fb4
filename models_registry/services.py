"""Reads and writes of the registry that other apps call."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import BigIntegerField, F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from batchserver.errors import Conflict, Invalid, NotFound
from models_registry.models import Model

# Weight of the newest chunk in the moving average of a model's measured throughput.
THROUGHPUT_SMOOTHING = 0.3


def find_active_model(name: str) -> Model | None:
    """The active model a batch line names, or None."""
    return Model.objects.active().filter(name=name).first()


def find_offered_model(name: str) -> Model | None:
    """The model a client may name: active and not failed its test (unless forced), or None."""
    return Model.objects.offered().filter(name=name).first()


def get_model(name: str) -> Model:
    """Any registered model by its served id (active or not); NotFound otherwise."""
    model = Model.objects.select_related("parent").filter(name=name).first()
    if model is None:
        raise NotFound("model", name, param="model")
    return model


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


def record_load(
    model_name: str, seconds: float, memory_bytes: int | None, peak_memory_bytes: int | None = None
) -> None:
    """Keep the last load a worker reported for a model (the ``engine_loaded`` signal): its
    time, the engine's memory once ready, and its peak memory during the load."""
    if not model_name:
        return
    Model.objects.filter(name=model_name).update(
        last_load_seconds=seconds,
        last_load_memory_bytes=memory_bytes,
        last_peak_memory_bytes=peak_memory_bytes,
        last_loaded_at=timezone.now(),
    )


def record_peak_memory(model_name: str, peak_memory_bytes: int) -> None:
    """Raise the model's peak memory since its last load to what a worker's engine reached
    (the ``engine_peak_memory`` signal). One UPDATE that only ever raises it, so two workers
    serving the model cannot lower each other's figure; the next load starts it afresh."""
    if not model_name or peak_memory_bytes is None:
        return
    Model.objects.filter(name=model_name).update(
        last_peak_memory_bytes=Greatest(
            Coalesce(F("last_peak_memory_bytes"), Value(0)),
            Value(peak_memory_bytes),
            output_field=BigIntegerField(),
        )
    )


VARIANT_SETTINGS = (
    "dtype",
    "max_model_len",
    "gpu_memory_utilization",
    "quantization",
    "enforce_eager",
    "cpu_kvcache_space_gib",
    "extra_args",
)


def check_new_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise Invalid("Give the model a served id (name).", param="name", code="missing_name")
    if len(name) > 200 or any(c.isspace() for c in name):
        raise Invalid(
            f"Served id {name!r} must be at most 200 characters without spaces.", param="name"
        )
    if Model.objects.filter(name=name).exists():
        raise Conflict(
            f"A model named {name!r} is already registered.", param="name", code="model_exists"
        )
    return name


@transaction.atomic
def register_variant(parent: Model, *, name: str, description: str = "", **settings: Any) -> Model:
    """Serve ``parent``'s weights under another id with other engine settings.

    A variant shares its parent's folder (no copy) and lineage; only engine settings differ
    (dtype, context length, quantization, KV cache…), so the same weights can be compared with
    themselves. Settings not given are the parent's.
    """
    name = check_new_name(name)
    unknown = sorted(set(settings) - set(VARIANT_SETTINGS))
    if unknown:
        raise Invalid(
            f"Not an engine setting of a variant: {', '.join(unknown)}.", param=unknown[0]
        )
    chosen = {k: v for k, v in settings.items() if v not in (None, "")}
    if not chosen:
        raise Invalid(
            "A variant needs at least one engine setting that differs from its parent.",
            param="dtype",
            code="no_setting",
        )
    inherited = {field: getattr(parent, field) for field in ENGINE_SETTINGS}
    same = all(inherited.get(k) == v for k, v in chosen.items())
    if same:
        raise Invalid(
            "These settings are the parent's own: a variant must differ in at least one.",
            param=next(iter(chosen)),
            code="same_settings",
        )
    model = Model(
        name=name,
        path=parent.path,
        source=parent.source,
        kind=parent.kind,
        owned_by=parent.owned_by,
        parent=parent,
        version=parent.version,
        origin=Model.Origin.VARIANT,
        description=description or f"{parent.name} with {_describe(chosen)}",
        **{**inherited, **chosen},
    )
    model.full_clean(exclude=["path"])
    model.save()
    return model


def _describe(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def set_active(model: Model, active: bool) -> Model:
    """Switch a model on or off. Off keeps its row, lineage, tests and usage: only new batches
    can no longer name it."""
    Model.objects.filter(pk=model.pk).update(is_active=active)
    model.is_active = active
    return model


def force_offer(model: Model, forced: bool) -> Model:
    """Offer a model to clients although its last test failed (or stop doing so)."""
    Model.objects.filter(pk=model.pk).update(test_forced=forced)
    model.test_forced = forced
    return model
