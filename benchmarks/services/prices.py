"""The operator's prices: an hourly price per GPU kind and cloud batch prices per million tokens.

Costs are stored on each result (so a comparison is a read), and recomputed for every result a
price concerns whenever the operator changes that price here or in the admin.
"""

from __future__ import annotations

from django.db import transaction

from batchserver.errors import Invalid, NotFound
from benchmarks import figures
from benchmarks.models import CloudPrice, GpuPrice, ModelResult


@transaction.atomic
def set_gpu_price(kind: str, hourly_price: object) -> GpuPrice:
    """Create or change the hourly price of a GPU kind; ``hourly_price`` must be a number."""
    kind = (kind or "").strip()
    if not kind or len(kind) > 100:
        raise Invalid("A GPU kind needs a name of 1 to 100 characters.", param="kind")
    price = figures.parse_price(hourly_price, "hourly_price")
    row, _ = GpuPrice.objects.update_or_create(kind=kind, defaults={"hourly_price": price})
    reprice(ModelResult.objects.filter(run__gpu_kind=kind))
    return row


@transaction.atomic
def set_cloud_price(name: str, input_per_million: object, output_per_million: object) -> CloudPrice:
    """Create or change a cloud batch price (per million input and output tokens)."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("A cloud price needs a name of 1 to 100 characters.", param="name")
    row, _ = CloudPrice.objects.update_or_create(
        name=name,
        defaults={
            "input_per_million": figures.parse_price(input_per_million, "input_per_million"),
            "output_per_million": figures.parse_price(output_per_million, "output_per_million"),
        },
    )
    reprice(ModelResult.objects.filter(run__cloud_price=row))
    return row


def get_cloud_price(ref: str | int | None) -> CloudPrice | None:
    """A cloud price by id or name; None for an empty reference, NotFound for an unknown one."""
    if ref in (None, ""):
        return None
    text = str(ref).strip()
    found = CloudPrice.objects.filter(pk=int(text)).first() if text.isdigit() else None
    found = found or CloudPrice.objects.filter(name=text).first()
    if found is None:
        raise NotFound("cloud price", text, param="cloud_price")
    return found


def check_gpu_kind(kind: str) -> str:
    """A GPU kind a run may name: empty (no self-hosted cost) or one with a price."""
    kind = (kind or "").strip()
    if kind and not GpuPrice.objects.filter(kind=kind).exists():
        known = ", ".join(GpuPrice.objects.values_list("kind", flat=True)) or "none yet"
        raise Invalid(
            f"No hourly price is set for GPU kind '{kind}' (priced: {known}).",
            param="gpu_kind",
            code="unknown_gpu_kind",
        )
    return kind


def default_gpu_kind() -> str:
    """The only priced GPU kind when there is exactly one; else none."""
    kinds = list(GpuPrice.objects.values_list("kind", flat=True)[:2])
    return kinds[0] if len(kinds) == 1 else ""


def apply_cost(result: ModelResult) -> None:
    """Set ``result``'s cost fields from its run's current prices (not saved)."""
    run = result.run
    gpu = GpuPrice.objects.filter(kind=run.gpu_kind).first() if run.gpu_kind else None
    cloud = run.cloud_price
    cost = figures.cost(
        hourly_price=gpu.hourly_price if gpu else None,
        wall_seconds=result.wall_seconds,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        cloud_input_per_million=cloud.input_per_million if cloud else None,
        cloud_output_per_million=cloud.output_per_million if cloud else None,
    )
    result.hourly_price = gpu.hourly_price if gpu else None
    result.gpu_cost = cost.gpu_cost
    result.cost_per_million_tokens = cost.cost_per_million_tokens
    result.cloud_cost = cost.cloud_cost
    result.cloud_cost_per_million_tokens = cost.cloud_cost_per_million_tokens


COST_FIELDS = [
    "hourly_price",
    "gpu_cost",
    "cost_per_million_tokens",
    "cloud_cost",
    "cloud_cost_per_million_tokens",
]


def reprice(results) -> int:
    """Recompute the stored costs of computed results (after a price changed)."""
    rows = list(results.filter(computed_at__isnull=False).select_related("run__cloud_price"))
    for row in rows:
        apply_cost(row)
    ModelResult.objects.bulk_update(rows, COST_FIELDS)
    return len(rows)
