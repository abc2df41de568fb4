"""The scheduler's extensions: pause, resume, re-prioritise, the queue as the worker sees it,
measured throughput, and restart requests for workers.

The queue is ordered exactly as ``jobs.runner.claim_chunk`` claims work: priority (highest
first), then a model some live worker already has loaded, then the oldest batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from batchserver.errors import Conflict, Invalid
from batchserver.models import ApiKey
from jobs.models import Batch, BatchChunk, File, Worker
from jobs.services.batches import enqueue
from models_registry.services import model_throughputs, seconds_for

logger = logging.getLogger(__name__)
S = Batch.Status
PRIORITY_RANGE = (-100, 100)
# Statuses a batch may be paused, resumed or re-prioritised in: queued or running.
SCHEDULABLE = (S.VALIDATING, S.IN_PROGRESS)
# Output tokens assumed per request when neither the body nor the batch's progress tells.
DEFAULT_OUTPUT_TOKENS = 256
RESTART_KEY = "worker-restart:{}"
RESTART_TTL_SECONDS = 24 * 3600


# --- pause, resume, priority ------------------------------------------------------------------


def _check_schedulable(batch: Batch, action: str) -> None:
    if batch.status not in SCHEDULABLE:
        raise Conflict(
            f"Cannot {action} a batch with status '{batch.status}'.",
            param="batch_id",
            code="batch_not_schedulable",
        )


def pause_batch(batch: Batch) -> Batch:
    """Stop handing out the batch's chunks; a chunk already running finishes and is kept."""
    _check_schedulable(batch, "pause")
    Batch.objects.filter(pk=batch.pk, status__in=SCHEDULABLE).update(paused=True)
    batch.refresh_from_db()
    logger.info("batch %s paused", batch.id)
    return batch


def resume_batch(batch: Batch) -> Batch:
    """Let the worker claim the batch's chunks again, and wake it."""
    _check_schedulable(batch, "resume")
    with transaction.atomic():
        Batch.objects.filter(pk=batch.pk, status__in=SCHEDULABLE).update(paused=False)
        enqueue("jobs.tasks.run_work")
    batch.refresh_from_db()
    logger.info("batch %s resumed", batch.id)
    return batch


def set_priority(batch: Batch, priority: int) -> Batch:
    """Change the priority of a queued or running batch; it counts from the next claimed chunk."""
    _check_schedulable(batch, "reprioritize")
    Batch.objects.filter(pk=batch.pk, status__in=SCHEDULABLE).update(priority=priority)
    batch.refresh_from_db()
    logger.info("batch %s priority set to %d", batch.id, priority)
    return batch


def priority_from_metadata(metadata: dict[str, str] | None) -> int | None:
    """The priority a client put in ``metadata["priority"]`` as a numeric string, else None.

    A value that is not an integer is ordinary metadata and ignored; an integer outside the
    allowed range is a client error.
    """
    raw = (metadata or {}).get("priority")
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        return None
    low, high = PRIORITY_RANGE
    if not low <= value <= high:
        raise Invalid(
            f"metadata.priority must be between {low} and {high}.",
            param="metadata.priority",
            code="invalid_value",
        )
    return value


# --- the queue --------------------------------------------------------------------------------


@dataclass
class QueueEntry:
    position: int
    batch: Batch
    running: bool
    remaining_seconds: float | None
    eta_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        b = self.batch
        done = b.request_completed + b.request_failed
        return {
            "position": self.position,
            "id": b.id,
            "object": "queue.entry",
            "model": b.model or None,
            "priority": b.priority,
            "paused": b.paused,
            "status": b.status,
            "running": self.running,
            "created_at": int(b.created_at.timestamp()),
            "progress": {
                "done": done,
                "total": b.request_total,
                "percent": round(100 * done / b.request_total, 1) if b.request_total else 0.0,
            },
            "remaining_seconds": self.remaining_seconds,
            "eta_seconds": self.eta_seconds,
        }


def _queue_key(batch: Batch, loaded: set[str]) -> tuple:
    # Finishing batches hold no GPU work; paused ones get none until resumed.
    phase = 0 if batch.status in (S.FINALIZING, S.CANCELLING) else (2 if batch.paused else 1)
    prefers_loaded = 0 if batch.model and batch.model in loaded else 1
    return (phase, -batch.priority, prefers_loaded, batch.created_at, batch.id)


def remaining_output_tokens(batch: Batch, lines: int | None = None) -> float:
    """Output tokens still to generate: the batch's own average so far, else a default.

    ``lines`` is the input file's line count, for a batch still validating (no rows yet).
    """
    if batch.status not in SCHEDULABLE:
        return 0.0
    done = batch.request_completed + batch.request_failed
    remaining = max(batch.request_total - done, 0)
    if batch.status == S.VALIDATING:
        remaining = lines or 0
    per_request = batch.output_tokens / done if done and batch.output_tokens else None
    return remaining * (per_request or DEFAULT_OUTPUT_TOKENS)


def queue_entries(owner: ApiKey | None = None) -> list[QueueEntry]:
    """Active batches in the worker's execution order, with global positions and estimates.

    ``owner`` keeps only that key's entries; positions and ETAs still count everyone's work.
    """
    alive = list(Worker.objects.alive().exclude(state=Worker.State.STOPPED))
    loaded = {w.loaded_model for w in alive if w.loaded_model}
    # No select_related: its inner join would hide a batch whose input file was deleted.
    batches = sorted(Batch.objects.active(), key=lambda b: _queue_key(b, loaded))
    lines = dict(
        File.objects.filter(
            id__in=[b.input_file_id for b in batches if b.status == S.VALIDATING]
        ).values_list("id", "line_count")
    )
    rates = model_throughputs({b.model for b in batches if b.model})
    running = set(
        BatchChunk.objects.filter(
            status=BatchChunk.Status.LEASED, leased_until__gt=timezone.now()
        ).values_list("batch_id", flat=True)
    )
    workers = max(len(alive), 1)
    entries: list[QueueEntry] = []
    ahead: float | None = 0.0
    for position, batch in enumerate(batches, start=1):
        own = seconds_for(
            remaining_output_tokens(batch, lines.get(batch.input_file_id)),
            rates.get(batch.model),
        )
        if batch.status not in SCHEDULABLE:
            own = 0.0
        eta = None
        if not batch.paused and own is not None and ahead is not None:
            ahead += own
            eta = round(ahead / workers, 1)
        elif not batch.paused:
            ahead = None  # an unknown throughput ahead makes every later ETA unknown
        if owner is None or batch.owner_id == owner.pk:
            entries.append(QueueEntry(position, batch, batch.id in running, own, eta))
    return entries


# --- workers ----------------------------------------------------------------------------------


def request_worker_restart(worker_ids: list[str] | None = None) -> list[str]:
    """Ask workers (every live one by default) to restart their engine between chunks.

    The request lives in the shared database cache, so the web process can set it and the
    worker process sees it before its next chunk.
    """
    if not worker_ids:
        worker_ids = list(Worker.objects.alive().values_list("worker_id", flat=True))
    now = timezone.now().timestamp()
    cache.set_many({RESTART_KEY.format(w): now for w in worker_ids}, RESTART_TTL_SECONDS)
    logger.info("engine restart requested for %s", ", ".join(worker_ids) or "no worker")
    return worker_ids


def take_restart_request(worker_id: str) -> bool:
    """True (once) if a restart was requested for ``worker_id``; the request is consumed."""
    key = RESTART_KEY.format(worker_id)
    if cache.get(key) is None:
        return False
    cache.delete(key)
    return True


def restart_requests(worker_ids: list[str]) -> dict[str, datetime]:
    """When a still pending restart was requested, by worker id."""
    found = cache.get_many([RESTART_KEY.format(w) for w in worker_ids])
    prefix = len(RESTART_KEY.format(""))
    return {
        key[prefix:]: datetime.fromtimestamp(value, tz=timezone.get_current_timezone())
        for key, value in found.items()
    }


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def recent_workers() -> list[Worker]:
    """Live workers and those seen within the last hour, newest heartbeat first."""
    since = timezone.now() - timedelta(hours=1)
    return list(Worker.objects.filter(last_heartbeat__gte=since).order_by("-last_heartbeat"))


def worker_statuses(owner: ApiKey | None = None) -> list[dict[str, Any]]:
    """What each recent worker does; ``owner`` hides other keys' batch ids (shown as null)."""
    workers = recent_workers()
    restarts = restart_requests([w.worker_id for w in workers])
    current = {w.current_batch_id for w in workers if w.current_batch_id}
    visible = set(
        Batch.objects.filter(pk__in=current, **({"owner": owner} if owner else {})).values_list(
            "pk", flat=True
        )
    )
    now = timezone.now()
    entries = []
    for w in workers:
        entry: dict[str, Any] = {
            "worker_id": w.worker_id,
            "object": "worker",
            "hostname": w.hostname,
            "pid": w.pid,
            "started_at": _ts(w.started_at),
            "last_heartbeat": _ts(w.last_heartbeat),
            "seconds_since_heartbeat": round((now - w.last_heartbeat).total_seconds(), 1),
            "alive": w.is_alive and w.state != Worker.State.STOPPED,
            "state": w.state,
            "loaded_model": w.loaded_model or None,
            "current_batch_id": w.current_batch_id if w.current_batch_id in visible else None,
            "current_chunk": w.current_chunk if w.current_batch_id in visible else None,
            "requests_done": w.requests_done,
            "output_tokens_done": w.output_tokens_done,
            "recent_output_tokens_per_second": w.recent_output_tokens_per_second,
            "restart_requested_at": _ts(restarts.get(w.worker_id)),
        }
        if w.gpu:  # absent, not null, on a machine without a usable GPU
            entry["gpu"] = w.gpu
        entries.append(entry)
    return entries


def _per_second(amount: int, seconds: float | None) -> float | None:
    return round(amount / seconds, 2) if seconds else None


def history_entry(batch: Batch) -> dict[str, Any]:
    """One batch as a history row; ``batch`` comes from ``Batch.objects.with_ended_at()``."""
    ended = getattr(batch, "ended_at", None)
    started = batch.in_progress_at or batch.created_at
    duration = round((ended - started).total_seconds(), 3) if ended else None
    done = batch.request_completed + batch.request_failed
    total_tokens = batch.input_tokens + batch.output_tokens
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
        "duration_seconds": duration,
        "requests_per_second": _per_second(done, duration),
        "input_tokens": batch.input_tokens,
        "output_tokens": batch.output_tokens,
        "total_tokens": total_tokens,
        "tokens_per_second": _per_second(total_tokens, duration),
        "output_tokens_per_second": _per_second(batch.output_tokens, duration),
        "webhook": bool(batch.webhook_url),
        "has_errors": bool(batch.errors) or batch.request_failed > 0,
        "correlation_id": batch.correlation_id,
    }
