"""Batch metrics for Prometheus, computed at scrape time from the database.

Web and worker are separate processes (and gunicorn runs several web processes), so counters
kept in one process's memory would each see a part of the truth. Instead this collector, which
the web process registers, asks the database (the single source of truth) on every scrape: a
handful of aggregate queries over the small ``Batch``, ``Worker`` and registry tables, never a
scan of the per-request table except for the rows of expired and cancelled batches. Any web
process answers every scrape with the same figures.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

from django.db import DatabaseError
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from jobs.models import Batch, BatchRequest, Worker
from models_registry.services import model_throughputs

logger = logging.getLogger(__name__)
S = Batch.Status
R = BatchRequest.Status
# Upper bounds (seconds) of the job-duration histogram: a minute to a week.
DURATION_BUCKETS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
# Worker.gpu device fields exported as series (the dashboard charts the same figures).
GPU_SERIES = {
    "memory_used_bytes": ("batch_gpu_memory_used_bytes", "GPU memory in use."),
    "memory_total_bytes": ("batch_gpu_memory_total_bytes", "GPU memory in all."),
    "utilization_percent": ("batch_gpu_utilization_percent", "GPU utilisation (percent)."),
    "temperature_celsius": ("batch_gpu_temperature_celsius", "GPU temperature (Celsius)."),
}


class BatchCollector(Collector):
    """``batch_*`` series computed from the rows at scrape time (see the module docstring)."""

    def describe(self) -> list[Metric]:
        # Registration asks for the names; answering here keeps it from querying the database.
        return list(self._families().values())

    def collect(self) -> Iterator[Metric]:
        try:
            families = self._families()
            self._fill(families)
        except DatabaseError as exc:  # a scrape must not turn a database outage into a 500
            logger.warning("batch metrics unavailable: %s", exc)
            return
        yield from families.values()

    @staticmethod
    def _families() -> dict[str, Metric]:
        return {
            "jobs": CounterMetricFamily(
                "batch_jobs",
                "Batches that ended, by final status and model.",
                labels=["status", "model"],
            ),
            "queue": GaugeMetricFamily(
                "batch_queue_depth",
                "Batches not yet ended, by status (paused batches counted in their status).",
                labels=["status"],
            ),
            "paused": GaugeMetricFamily("batch_queue_paused", "Active batches that are paused."),
            "pending": GaugeMetricFamily(
                "batch_queue_pending_requests", "Requests of active batches not yet answered."
            ),
            "duration": HistogramMetricFamily(
                "batch_jobs_duration_seconds",
                "Seconds from creation to the end of batches that ended.",
            ),
            "requests": CounterMetricFamily(
                "batch_requests", "Requests answered or given up, by outcome.", labels=["outcome"]
            ),
            "tokens": CounterMetricFamily(
                "batch_tokens", "Tokens processed, by kind (input, output).", labels=["kind"]
            ),
            "throughput": GaugeMetricFamily(
                "batch_throughput_tokens_per_second",
                "Measured output tokens per second of each model (moving average over chunks).",
                labels=["model"],
            ),
            "up": GaugeMetricFamily(
                "batch_worker_up",
                "1 if the worker's heartbeat is recent, else 0 (workers seen in the last hour).",
                labels=["worker"],
            ),
            "alive": GaugeMetricFamily("batch_workers_alive", "Workers with a recent heartbeat."),
            **{
                key: GaugeMetricFamily(name, text, labels=["worker", "gpu"])
                for key, (name, text) in GPU_SERIES.items()
            },
        }

    def _fill(self, f: dict[str, Metric]) -> None:
        self._batches(f)
        self._durations(f["duration"])
        for name, rate in model_throughputs().items():
            f["throughput"].add_metric([name], rate)
        self._workers(f["up"], f["alive"])
        self._gpus(f)

    @staticmethod
    def _batches(f: dict[str, Metric]) -> None:
        """Jobs, queue, requests and tokens in one GROUP BY over the batches."""
        rows = Batch.objects.values("status", "model").annotate(
            n=Count("id"),
            paused=Count("id", filter=Q(paused=True)),
            total=Sum("request_total"),
            completed=Sum("request_completed"),
            failed=Sum("request_failed"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
        )
        queue = {status: 0 for status in Batch.ACTIVE}
        sums = {"completed": 0, "failed": 0, "input": 0, "output": 0, "pending": 0, "paused": 0}
        for row in rows:
            if row["status"] in Batch.TERMINAL:
                f["jobs"].add_metric([row["status"], row["model"]], row["n"])
            else:
                queue[row["status"]] += row["n"]
                sums["paused"] += row["paused"]
                sums["pending"] += (row["total"] or 0) - (row["completed"] or 0)
                sums["pending"] -= row["failed"] or 0
            sums["completed"] += row["completed"] or 0
            sums["failed"] += row["failed"] or 0
            sums["input"] += row["input_tokens"] or 0
            sums["output"] += row["output_tokens"] or 0
        for status, n in queue.items():
            f["queue"].add_metric([status], n)
        f["paused"].add_metric([], sums["paused"])
        f["pending"].add_metric([], max(sums["pending"], 0))
        # A batch's failed count includes its expired and cancelled lines once it has ended.
        unfinished = dict(
            BatchRequest.objects.filter(
                batch__status__in=(S.EXPIRED, S.CANCELLED), status__in=(R.EXPIRED, R.CANCELLED)
            )
            .values_list("status")
            .annotate(n=Count("id"))
        )
        expired, cancelled = unfinished.get(R.EXPIRED, 0), unfinished.get(R.CANCELLED, 0)
        f["requests"].add_metric(["completed"], sums["completed"])
        f["requests"].add_metric(["failed"], max(sums["failed"] - expired - cancelled, 0))
        f["requests"].add_metric(["expired"], expired)
        f["requests"].add_metric(["cancelled"], cancelled)
        f["tokens"].add_metric(["input"], sums["input"])
        f["tokens"].add_metric(["output"], sums["output"])

    @staticmethod
    def _durations(histogram: HistogramMetricFamily) -> None:
        """Cumulative bucket counts and the sum, in one aggregate query."""
        duration = ExpressionWrapper(F("ended") - F("created_at"), output_field=DurationField())
        bounds = {
            f"le_{b}": Count("id", filter=Q(duration__lte=timedelta(seconds=b)))
            for b in DURATION_BUCKETS
        }
        agg = (
            Batch.objects.finished()
            .with_ended_at()
            .filter(ended__isnull=False)
            .annotate(duration=duration)
            .aggregate(n=Count("id"), total=Sum("duration"), **bounds)
        )
        buckets = [(str(float(b)), agg[f"le_{b}"]) for b in DURATION_BUCKETS]
        buckets.append(("+Inf", agg["n"]))
        total = agg["total"]
        histogram.add_metric([], buckets, total.total_seconds() if total else 0.0)

    @staticmethod
    def _workers(up: GaugeMetricFamily, alive: GaugeMetricFamily) -> None:
        now_alive = 0
        for worker in Worker.objects.recent():
            now_alive += worker.is_alive
            up.add_metric([worker.worker_id], 1.0 if worker.is_alive else 0.0)
        alive.add_metric([], now_alive)

    @staticmethod
    def _gpus(f: dict[str, Metric]) -> None:
        """Each live worker's GPU figures, as its last heartbeat reported them (NVML)."""
        for worker in Worker.objects.alive().exclude(gpu__isnull=True):
            for device in (worker.gpu or {}).get("devices", []):
                labels = [worker.worker_id, str(device.get("index", 0))]
                for key in GPU_SERIES:
                    if isinstance(device.get(key), int | float):
                        f[key].add_metric(labels, float(device[key]))


_registered = False


def register() -> None:
    """Register the collector with prometheus_client's default registry (once per process)."""
    global _registered
    if not _registered:
        REGISTRY.register(BatchCollector())
        _registered = True
