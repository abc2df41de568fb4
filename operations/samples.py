"""The dashboard's time series: a sample a minute, and rates between consecutive samples."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from batchserver.models import LogLine
from jobs import selectors
from operations.models import MetricSample

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


def window(hours: float) -> list[MetricSample]:
    """Samples of the last ``hours`` (at most one a minute, so at most 60 × hours rows)."""
    since = timezone.now() - timedelta(hours=hours)
    return list(MetricSample.objects.filter(at__gte=since).order_by("at"))


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
