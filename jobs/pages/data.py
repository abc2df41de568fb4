"""What the operator pages show, read from the job tables (never from django-q2's task table).

Queue order, positions and ETAs come from ``jobs.services.scheduling`` (the one place that
estimates); this module adds what only the pages need: states, leases, history throughput.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from jobs.models import Batch, BatchChunk, BatchRequest, File, Worker
from jobs.services import scheduling

S = Batch.Status
QUEUED = (S.VALIDATING, S.IN_PROGRESS, S.FINALIZING, S.CANCELLING)
HISTORY_LIMIT = 200


@dataclass
class Throughput:
    """How fast one finished batch ran, from its first chunk to its last (in_progress → end)."""

    batch: Batch
    ended_at: datetime
    seconds: float
    requests: int
    requests_per_second: float
    tokens_per_second: float


@dataclass
class QueueRow:
    """One queued or running batch, in the order the workers will take it."""

    batch: Batch
    position: int | None
    state: str  # running | queued | paused | validating | finalizing | cancelling
    done: int
    total: int
    requests_per_second: float | None
    eta: datetime | None
    workers: list[str] = field(default_factory=list)
    eta_seconds: float | None = None

    @property
    def eta_text(self) -> str:
        return duration_text(self.eta_seconds) if self.eta_seconds is not None else ""

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done)


def duration_text(seconds: float) -> str:
    """12 s, 3 min 4 s, 2 h 5 min: what an operator reads at a glance."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def done_of(batch: Batch) -> int:
    return batch.request_completed + batch.request_failed


def ended_at(batch: Batch) -> datetime | None:
    """When the batch stopped running requests (assembly of its files excluded)."""
    return (
        batch.finalizing_at
        or batch.completed_at
        or batch.cancelled_at
        or batch.expired_at
        or batch.failed_at
    )


def throughput(batch: Batch) -> Throughput | None:
    end = ended_at(batch)
    if batch.in_progress_at is None or end is None:
        return None
    seconds = (end - batch.in_progress_at).total_seconds()
    requests = done_of(batch)
    if seconds <= 0 or requests == 0:
        return None
    return Throughput(
        batch, end, seconds, requests, requests / seconds, batch.output_tokens / seconds
    )


def _leases(now: datetime) -> dict[str, list[str]]:
    held: dict[str, list[str]] = defaultdict(list)
    for batch_id, worker in (
        BatchChunk.objects.filter(status=BatchChunk.Status.LEASED, leased_until__gt=now)
        .values_list("batch_id", "worker_id")
        .order_by("worker_id")
        .distinct()
    ):
        held[batch_id].append(worker)
    return held


def _state(batch: Batch, leased: bool) -> str:
    if batch.status != S.IN_PROGRESS:
        return batch.status
    if batch.paused:
        return "paused"
    return "running" if leased else "queued"


def queue(now: datetime | None = None) -> list[QueueRow]:
    """Active batches in execution order, with position and ETA from the scheduling service.

    Order and ETA are ``jobs.services.scheduling.queue_entries`` (the one place that estimates);
    this adds what the page shows beside them: state, the workers holding chunks, the rate.
    """
    now = now or timezone.now()
    leases = _leases(now)
    rows = []
    for entry in scheduling.queue_entries():
        batch = entry.batch
        done, total = done_of(batch), batch.request_total or _input_lines(batch)
        elapsed = (now - batch.in_progress_at).total_seconds() if batch.in_progress_at else 0
        eta = now + timedelta(seconds=entry.eta_seconds) if entry.eta_seconds is not None else None
        rows.append(
            QueueRow(
                batch=batch,
                position=entry.position,
                state=_state(batch, entry.running or bool(leases.get(batch.id))),
                done=done,
                total=total,
                requests_per_second=done / elapsed if done and elapsed > 0 else None,
                eta=eta,
                workers=leases.get(batch.id, []),
                eta_seconds=entry.eta_seconds,
            )
        )
    return rows


def _input_lines(batch: Batch) -> int:
    # queue_entries selected the input file already; a validating batch has no rows counted yet.
    try:
        return batch.input_file.line_count or 0
    except File.DoesNotExist:  # the client deleted the input file
        return 0


def queue_row(batch: Batch) -> QueueRow | None:
    return next((row for row in queue() if row.batch.pk == batch.pk), None)


def history(
    status: str = "",
    model: str = "",
    created_from: date | None = None,
    created_to: date | None = None,
) -> QuerySet[Batch]:
    """Finished batches, newest first, filtered as the history page asks."""
    batches = Batch.objects.filter(status__in=Batch.TERMINAL)
    if status:
        batches = batches.filter(status=status)
    if model:
        batches = batches.filter(model=model)
    if created_from:
        batches = batches.filter(created_at__date__gte=created_from)
    if created_to:
        batches = batches.filter(created_at__date__lte=created_to)
    return batches.order_by("-created_at", "-id")[:HISTORY_LIMIT]


def throughput_series(batches: QuerySet[Batch]) -> list[Throughput]:
    """Throughput of each batch that ran, oldest end first (the charts' x axis is time)."""
    measured = [t for t in (throughput(b) for b in batches) if t is not None]
    return sorted(measured, key=lambda t: t.ended_at)


def known_models() -> list[str]:
    return list(
        Batch.objects.exclude(model="").order_by("model").values_list("model", flat=True).distinct()
    )


@dataclass
class WorkerRow:
    worker: Worker
    heartbeat_age: float
    alive: bool
    chunks_done: int
    chunks_leased: int


def workers(now: datetime | None = None) -> list[WorkerRow]:
    """Every worker that ever reported, live ones first, with the chunks each ran."""
    now = now or timezone.now()
    chunks = {
        row["worker_id"]: row
        for row in BatchChunk.objects.exclude(worker_id="")
        .values("worker_id")
        .annotate(
            done=Count("id", filter=Q(status=BatchChunk.Status.DONE)),
            leased=Count("id", filter=Q(status=BatchChunk.Status.LEASED)),
        )
    }
    rows = []
    for worker in Worker.objects.all():
        counts = chunks.get(worker.worker_id, {})
        rows.append(
            WorkerRow(
                worker,
                (now - worker.last_heartbeat).total_seconds(),
                worker.is_alive and worker.state != Worker.State.STOPPED,
                counts.get("done", 0),
                counts.get("leased", 0),
            )
        )
    return sorted(rows, key=lambda r: (not r.alive, r.heartbeat_age))


def batch_detail(batch: Batch) -> dict[str, Any]:
    """Counts by request status and chunk status, chunks per worker, a few failed requests."""
    requests = Counter(
        dict(
            BatchRequest.objects.filter(batch=batch)
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
    )
    chunks = Counter(
        dict(batch.chunks.values("status").annotate(n=Count("id")).values_list("status", "n"))
    )
    per_worker = list(
        batch.chunks.exclude(worker_id="")
        .values("worker_id")
        .annotate(chunks=Count("id"))
        .order_by("worker_id")
    )
    failed = list(
        BatchRequest.objects.filter(batch=batch)
        .exclude(status__in=(BatchRequest.Status.PENDING, BatchRequest.Status.COMPLETED))
        .order_by("line")
        .only("line", "custom_id", "status", "response_status", "response_body", "error")[:20]
    )
    return {
        "request_counts": dict(requests),
        "pending": requests.get(BatchRequest.Status.PENDING, 0),
        "chunk_counts": dict(chunks),
        "chunks_total": sum(chunks.values()),
        "per_worker": per_worker,
        "failed_requests": failed,
        "throughput": throughput(batch),
    }
