"""The arithmetic of a benchmark: throughput, latency percentiles, cost. Pure functions.

Throughput uses the same words and the same clock as ``bench/engine_efficiency.py``'s server
figure: tokens (the batch's ``usage``) divided by the wall time from the batch's creation to its
end, so the figure is what a client that submits the same prompts would measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from batchserver.errors import Invalid

MILLION = 1_000_000


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Throughput:
    requests_per_second: float | None
    output_tokens_per_second: float | None
    total_tokens_per_second: float | None


def throughput(
    completed: int, input_tokens: int, output_tokens: int, wall_seconds: float | None
) -> Throughput:
    """Completed requests and tokens per wall second (None without a positive duration)."""
    if not wall_seconds or wall_seconds <= 0 or completed == 0:
        return Throughput(None, None, None)
    return Throughput(
        completed / wall_seconds,
        output_tokens / wall_seconds,
        (input_tokens + output_tokens) / wall_seconds,
    )


@dataclass(frozen=True)
class Cost:
    gpu_cost: float | None  # what the wall time cost at the hourly price
    cost_per_million_tokens: float | None  # per million tokens, input and output together
    cloud_cost: float | None  # the same tokens at the cloud batch price
    cloud_cost_per_million_tokens: float | None


def cost(
    *,
    hourly_price: Decimal | float | None,
    wall_seconds: float | None,
    input_tokens: int,
    output_tokens: int,
    cloud_input_per_million: Decimal | float | None = None,
    cloud_output_per_million: Decimal | float | None = None,
) -> Cost:
    """Self-hosted cost ``hourly × seconds / 3600`` and per million tokens, beside the cloud's."""
    tokens = input_tokens + output_tokens
    gpu = None
    if hourly_price is not None and wall_seconds:
        gpu = float(hourly_price) * wall_seconds / 3600
    cloud = None
    if cloud_input_per_million is not None and cloud_output_per_million is not None:
        cloud = (
            input_tokens * float(cloud_input_per_million)
            + output_tokens * float(cloud_output_per_million)
        ) / MILLION

    def per_million(total: float | None) -> float | None:
        return None if total is None or tokens == 0 else total / tokens * MILLION

    return Cost(gpu, per_million(gpu), cloud, per_million(cloud))


def parse_price(value: object, param: str) -> Decimal:
    """A price from a form or JSON: a finite, non-negative number; Invalid with a clear message."""
    text = str(value).strip() if value is not None else ""
    try:
        price = Decimal(text) if text else None
    except InvalidOperation:
        price = None
    if price is None or not price.is_finite():
        raise Invalid(
            f"{param} must be a number (for example 2.50), not {text!r}.",
            param=param,
            code="invalid_price",
        )
    if price < 0:
        raise Invalid(
            f"{param} cannot be negative (got {text}).", param=param, code="invalid_price"
        )
    if price >= Decimal(10) ** 8:
        raise Invalid(f"{param} is too large (got {text}).", param=param, code="invalid_price")
    return price.quantize(Decimal("0.000001"))
