"""The dashboard's time series: a sample a minute, and rates between consecutive samples."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from batchserver.models import LogLine
from batchserver.operations.models import MetricSample
from jobs import selectors

KEEP = timedelta(days=7)
# The engine manager logs this when it starts loading a model (jobs/worker/engine/manager.py).
LOAD_MESSAGE = "engine: loading model"


def take_sample() -> MetricSample:
    """Record the figures now (and forget samples older than a week)."""
    now = timezone.now()
    last = MetricSample.objects.order_by("-at").first()
    since = last.at if last else now - timedelta(minutes=1)
    figures = selectors.totals()
    loads = LogLine.objects.filter(
        at__gt=since, at__lte=now, message__startswith=LOAD_MESSAGE
    ).count()
    with transaction.atomic():
        sample = MetricSample.objects.create(at=now, engine_loads=loads, **figures)
        MetricSample.objects.filter(at__lt=now - KEEP).delete()
    return sample


@dataclass(frozen=True)
class Rates:
    """What happened between two samples, per second."""

    at: datetime
    requests_per_second: float
    tokens_per_second: float
    error_rate: float  # failed / (completed + failed) in the interval, 0..1


def rates(samples: list[MetricSample]) -> list[Rates]:
    out = []
    for before, after in zip(samples, samples[1:], strict=False):
        seconds = (after.at - before.at).total_seconds()
        if seconds <= 0:
            continue
        done = after.requests_completed - before.requests_completed
        failed = after.requests_failed - before.requests_failed
        tokens = after.output_tokens - before.output_tokens
        answered = max(done + failed, 0)
        out.append(
            Rates(
                after.at,
                max(answered, 0) / seconds,
                max(tokens, 0) / seconds,
                (max(failed, 0) / answered) if answered else 0.0,
            )
        )
    return out


def window(hours: float, points: int = 120) -> list[MetricSample]:
    """About ``points`` samples evenly spread over the last ``hours`` (and the newest one).

    Only the ids of the window are read in full (a week is ~10,000); the rows fetched are the
    chosen ones, so a long window costs no more to draw than a short one.
    """
    since = timezone.now() - timedelta(hours=hours)
    ids = list(
        MetricSample.objects.filter(at__gte=since).order_by("at").values_list("pk", flat=True)
    )
    step = max(1, -(-len(ids) // points))
    chosen = ids[::step]
    if ids and chosen[-1] != ids[-1]:
        chosen.append(ids[-1])
    return list(MetricSample.objects.filter(pk__in=chosen).order_by("at"))


def gpu_series(samples: list[MetricSample], key: str) -> dict[str, list[tuple[Any, float]]]:
    """One line per GPU (worker and index): ``key`` of each device over the samples."""
    lines: dict[str, list[tuple[Any, float]]] = {}
    for sample in samples:
        for device in sample.gpus or []:
            value = device.get(key)
            if isinstance(value, int | float):
                name = f"{device.get('worker', '?')} #{device.get('index', 0)}"
                lines.setdefault(name, []).append((sample.at, float(value)))
    return lines
