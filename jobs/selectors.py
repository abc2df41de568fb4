"""The operator side's one read model: the API, the pages, the metrics and the admin read here.

One definition each: when a batch ended (``Batch.ended_at``), whether a worker is alive
(``Worker.objects.alive()`` / ``Worker.is_alive``), a batch's progress (``Batch.done``) and its
throughput (``throughput`` below: answered lines and tokens over the time from ``in_progress``
to its end), the queue order (``Batch.CLAIM_ORDER`` through ``jobs.worker.queue``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from batchserver.charts import duration_text
from batchserver.models import ApiKey, AuditEntry, LogLine
from jobs.models import Batch, BatchChunk, BatchRequest, File, WebhookDelivery, Worker
from jobs.services.scheduling import remaining_output_tokens
from jobs.worker import kinds
from jobs.worker.control import restart_requests
from jobs.worker.queue import QueueEntry, queue_entries
from models_registry.services import model_throughputs, seconds_for

S = Batch.Status
HISTORY_LIMIT = 100  # rows drawn by the history page (its filters narrow them)


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


# --- throughput (one definition) -----------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    """How fast one batch ran, from ``in_progress`` (or creation) to its end."""

    ended_at: datetime
    seconds: float
    requests: int
    requests_per_second: float
    tokens_per_second: float  # input + output
    output_tokens_per_second: float


def throughput(batch: Batch) -> Throughput | None:
    """The batch's throughput once it has ended and answered something, else None."""
    end = batch.ended_at
    if end is None:
        return None
    seconds = (end - (batch.in_progress_at or batch.created_at)).total_seconds()
    if seconds <= 0 or batch.done == 0:
        return None
    return Throughput(
        ended_at=end,
        seconds=seconds,
        requests=batch.done,
        requests_per_second=batch.done / seconds,
        tokens_per_second=(batch.input_tokens + batch.output_tokens) / seconds,
        output_tokens_per_second=batch.output_tokens / seconds,
    )


# --- the queue -----------------------------------------------------------------------------


def batch_queue_items() -> list[kinds.QueueItem]:
    """Active batches as queue items (the batch kind's part of the queue)."""
    # No select_related: its inner join would hide a batch whose input file was deleted.
    batches = list(Batch.objects.active())
    lines = dict(
        File.objects.filter(
            id__in=[b.input_file_id for b in batches if b.status == S.VALIDATING]
        ).values_list("id", "line_count")
    )
    rates = model_throughputs({b.model for b in batches if b.model})
    running = set(BatchChunk.objects.running().values_list("batch_id", flat=True))
    items = []
    for batch in batches:
        own = seconds_for(
            remaining_output_tokens(batch, lines.get(batch.input_file_id)), rates.get(batch.model)
        )
        finishing = batch.status in (S.FINALIZING, S.CANCELLING)
        items.append(
            kinds.QueueItem(
                kind="batch",
                id=batch.id,
                owner_id=batch.owner_id,
                model=batch.model,
                priority=batch.priority,
                created_at=batch.created_at,
                status=batch.status,
                running=batch.id in running,
                paused=batch.paused,
                done=batch.done,
                total=batch.request_total or lines.get(batch.input_file_id) or 0,
                phase=0 if finishing else (2 if batch.paused else 1),
                remaining_seconds=0.0 if finishing else own,
                url=f"/batches/{batch.id}",
                extra={"batch": batch},
            )
        )
    return items


@dataclass
class QueueRow:
    """One queued or running unit on the queue page, in the order the workers take it."""

    entry: QueueEntry
    state: str  # running | queued | paused | validating | finalizing | cancelling | …
    workers: list[str] = field(default_factory=list)
    requests_per_second: float | None = None
    eta: datetime | None = None

    @property
    def item(self) -> kinds.QueueItem:
        return self.entry.item

    @property
    def percent(self) -> int:
        return int(self.entry.percent)

    @property
    def eta_text(self) -> str:
        seconds = self.entry.eta_seconds
        return duration_text(seconds) if seconds is not None else ""


def _leases() -> dict[str, list[str]]:
    held: dict[str, list[str]] = defaultdict(list)
    for batch_id, worker in (
        BatchChunk.objects.running()
        .values_list("batch_id", "worker_id")
        .order_by("worker_id")
        .distinct()
    ):
        held[batch_id].append(worker)
    return held


def _state(item: kinds.QueueItem) -> str:
    if item.status not in (S.IN_PROGRESS, "queued", "running"):
        return item.status
    if item.paused:
        return "paused"
    return "running" if item.running else "queued"


def queue_rows(now: datetime | None = None) -> list[QueueRow]:
    """The queue as the page shows it: every kind, with state, workers, rate and ETA."""
    now = now or timezone.now()
    leases = _leases()
    rows = []
    for entry in queue_entries():
        item = entry.item
        batch = item.extra.get("batch")
        started = getattr(batch, "in_progress_at", None)
        elapsed = (now - started).total_seconds() if started else 0
        rows.append(
            QueueRow(
                entry=entry,
                state=_state(item),
                workers=leases.get(item.id, []),
                requests_per_second=item.done / elapsed if item.done and elapsed > 0 else None,
                eta=now + timedelta(seconds=entry.eta_seconds)
                if entry.eta_seconds is not None
                else None,
            )
        )
    return rows


def queue_for(owner: ApiKey | None = None) -> dict[str, Any]:
    """``/v1/queue``: the entries ``owner`` may see (positions and ETAs count everyone's)."""
    entries = queue_entries()
    own = [e for e in entries if owner is None or e.item.owner_id == owner.pk]
    return {
        "object": "list",
        "data": [e.as_dict() for e in own],
        "total_active": len(entries),
        "workers_alive": Worker.objects.alive().count(),
    }


# --- workers -------------------------------------------------------------------------------


def worker_statuses(owner: ApiKey | None = None) -> list[dict[str, Any]]:
    """What each recent worker does; ``owner`` hides other keys' batch ids (shown as null)."""
    workers = list(Worker.objects.recent().order_by("-last_heartbeat"))
    restarts = restart_requests([w.worker_id for w in workers])
    current = {w.current_batch_id for w in workers if w.current_batch_id}
    visible = Batch.objects.filter(pk__in=current)
    if owner is not None:
        visible = visible.owned_by(owner)
    shown = set(visible.values_list("pk", flat=True))
    now = timezone.now()
    entries = []
    for w in workers:
        own = w.current_batch_id in shown
        entry: dict[str, Any] = {
            "worker_id": w.worker_id,
            "object": "worker",
            "hostname": w.hostname,
            "pid": w.pid,
            "started_at": _ts(w.started_at),
            "last_heartbeat": _ts(w.last_heartbeat),
            "seconds_since_heartbeat": round((now - w.last_heartbeat).total_seconds(), 1),
            "alive": w.is_alive,
            "state": w.state,
            "loaded_model": w.loaded_model or None,
            "current_batch_id": w.current_batch_id if own else None,
            "current_chunk": w.current_chunk if own else None,
            "requests_done": w.requests_done,
            "output_tokens_done": w.output_tokens_done,
            "recent_output_tokens_per_second": w.recent_output_tokens_per_second,
            "restart_requested_at": _ts(restarts.get(w.worker_id)),
        }
        if w.gpu:  # absent, not null, on a machine without a usable GPU
            entry["gpu"] = w.gpu
        entries.append(entry)
    return entries


@dataclass
class WorkerRow:
    worker: Worker
    heartbeat_age: float
    chunks_done: int
    chunks_leased: int
    restart_requested_at: datetime | None = None

    @property
    def alive(self) -> bool:
        return self.worker.is_alive


def worker_rows(now: datetime | None = None) -> list[WorkerRow]:
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
    workers = list(Worker.objects.all())
    restarts = restart_requests([w.worker_id for w in workers])
    rows = [
        WorkerRow(
            w,
            (now - w.last_heartbeat).total_seconds(),
            chunks.get(w.worker_id, {}).get("done", 0),
            chunks.get(w.worker_id, {}).get("leased", 0),
            restarts.get(w.worker_id),
        )
        for w in workers
    ]
    return sorted(rows, key=lambda r: (not r.alive, r.heartbeat_age))


# --- history -------------------------------------------------------------------------------


def history(
    owner: ApiKey | None = None,
    *,
    statuses: list[str] | None = None,
    model: str = "",
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Batch]:
    """Batches newest first, filtered as the history page and ``/v1/jobs/history`` ask."""
    rows = Batch.objects.all() if owner is None else Batch.objects.owned_by(owner)
    rows = rows.created_between(created_after, created_before)
    if statuses:
        rows = rows.filter(status__in=statuses)
    if model:
        rows = rows.filter(model=model)
    return rows.order_by("-created_at", "-id")


def history_entry(batch: Batch) -> dict[str, Any]:
    """One batch as a history row (``/v1/jobs/history``)."""
    measured = throughput(batch)
    return {
        "batch_id": batch.id,
        "object": "batch.history",
        "status": batch.status,
        "model": batch.model or None,
        "endpoint": batch.endpoint,
        "priority": batch.priority,
        "created_at": _ts(batch.created_at),
        "in_progress_at": _ts(batch.in_progress_at),
        "completed_at": _ts(batch.completed_at),
        "failed_at": _ts(batch.failed_at),
        "cancelled_at": _ts(batch.cancelled_at),
        "expired_at": _ts(batch.expired_at),
        "request_counts": {
            "total": batch.request_total,
            "completed": batch.request_completed,
            "failed": batch.request_failed,
        },
        "duration_seconds": round(measured.seconds, 3) if measured else None,
        "requests_per_second": round(measured.requests_per_second, 2) if measured else None,
        "input_tokens": batch.input_tokens,
        "output_tokens": batch.output_tokens,
        "total_tokens": batch.input_tokens + batch.output_tokens,
        "tokens_per_second": round(measured.tokens_per_second, 2) if measured else None,
        "output_tokens_per_second": round(measured.output_tokens_per_second, 2)
        if measured
        else None,
        "webhook": bool(batch.webhook_url),
        "has_errors": bool(batch.errors) or batch.request_failed > 0,
        "correlation_id": batch.correlation_id,
    }


def known_models() -> list[str]:
    return list(
        Batch.objects.exclude(model="").order_by("model").values_list("model", flat=True).distinct()
    )


# --- one batch -----------------------------------------------------------------------------


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
        "webhook_deliveries": list(
            WebhookDelivery.objects.filter(batch=batch).order_by("-created_at")[:20]
        ),
        "log_lines": batch_log_lines(batch),
        "audit_entries": list(AuditEntry.objects.about(batch.pk)[:20]),
    }


def batch_log_lines(batch: Batch, limit: int = 100) -> list[LogLine]:
    """The batch's recent log lines: those carrying its correlation id, oldest first."""
    if not batch.correlation_id:
        return []
    lines = LogLine.objects.filter(correlation_id=batch.correlation_id).order_by("-id")[:limit]
    return list(reversed(lines))


# --- totals (the console's dashboard samples these every minute) ----------------------------


def totals() -> dict[str, Any]:
    """Queue depth and running totals over every batch, in one GROUP BY; workers and GPUs.

    Counters only grow (requests answered, tokens), so two samples a minute apart give rates.
    """
    rows = Batch.objects.values("status").annotate(
        n=Count("id"),
        completed=Sum("request_completed"),
        failed=Sum("request_failed"),
        total=Sum("request_total"),
        output_tokens=Sum("output_tokens"),
        input_tokens=Sum("input_tokens"),
    )
    out: dict[str, Any] = {
        "queued_batches": 0,
        "running_batches": 0,
        "pending_requests": 0,
        "requests_completed": 0,
        "requests_failed": 0,
        "input_tokens": 0,
        "output_tokens": 0,
    }
    for row in rows:
        if row["status"] == S.IN_PROGRESS:
            out["running_batches"] += row["n"]
        elif row["status"] in Batch.ACTIVE:
            out["queued_batches"] += row["n"]
        if row["status"] in Batch.ACTIVE:
            out["pending_requests"] += (
                (row["total"] or 0) - (row["completed"] or 0) - (row["failed"] or 0)
            )
        out["requests_completed"] += row["completed"] or 0
        out["requests_failed"] += row["failed"] or 0
        out["input_tokens"] += row["input_tokens"] or 0
        out["output_tokens"] += row["output_tokens"] or 0
    alive = [w for w in Worker.objects.recent() if w.is_alive]
    out["workers_alive"] = len(alive)
    out["loaded_models"] = sorted({w.loaded_model for w in alive if w.loaded_model})
    out["gpus"] = [
        {"worker": w.worker_id, **device}
        for w in alive
        for device in (w.gpu or {}).get("devices", [])
    ]
    return out


def recent_durations(limit: int = 200) -> list[tuple[datetime, float, str]]:
    """(ended at, seconds from creation to end, batch id) of the last finished batches."""
    found = Batch.objects.finished().with_ended_at().filter(ended__isnull=False)
    rows = found.order_by("-ended").values_list("ended", "created_at", "id")[:limit]
    return [(ended, (ended - created).total_seconds(), pk) for ended, created, pk in rows]


def correlation_of(batch_id: str) -> str | None:
    """The correlation id of a batch (its log lines carry it), or None for no such batch."""
    found = Batch.objects.filter(pk=batch_id).values_list("correlation_id", flat=True).first()
    return found


# --- every key's objects, read-only, for staff (the browsable API at /api/browse/) ----------


def _with_owner(obj: Any, data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "owner": obj.owner.name, "owner_prefix": obj.owner.prefix}


def staff_batches(status: str = "", limit: int = 100) -> list[dict[str, Any]]:
    """Every key's batches, newest first, as the API shows them plus their owner."""
    rows = Batch.objects.select_related("owner").order_by("-created_at", "-id")
    if status:
        rows = rows.filter(status=status)
    return [_with_owner(b, b.as_openai()) for b in rows[:limit]]


def staff_batch(batch_id: str) -> dict[str, Any] | None:
    found = Batch.objects.select_related("owner").filter(pk=batch_id).first()
    if found is None:
        return None
    detail = {
        "purge_state": found.purge_state or None,
        "priority": found.priority,
        "paused": found.paused,
        "correlation_id": found.correlation_id,
    }
    return _with_owner(found, {**found.as_openai(), **detail})


def staff_files(limit: int = 100) -> list[dict[str, Any]]:
    rows = File.objects.select_related("owner").order_by("-created_at")[:limit]
    return [_with_owner(f, f.as_openai()) for f in rows]


def staff_webhooks(status: str = "", limit: int = 100) -> list[dict[str, Any]]:
    rows = WebhookDelivery.objects.select_related("batch").order_by("-created_at")
    if status:
        rows = rows.filter(status=status)
    return [d.as_api() for d in rows[:limit]]
