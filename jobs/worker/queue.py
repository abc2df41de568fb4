"""The queue of GPU work across every kind, in the order workers claim it, with ETAs.

Each kind lists its own units (``WorkKind.queue_items``); here they are merged in claim order
(``QueueItem.sort_key``: finishing first, then priority, a loaded model, age; paused last),
numbered, and given an ETA: the estimated work ahead plus the unit's own, shared by the live
workers. ``/v1/queue`` and the queue page both read this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobs.worker import kinds
from jobs.worker.models import Worker


@dataclass
class QueueEntry:
    position: int
    item: kinds.QueueItem
    eta_seconds: float | None

    @property
    def percent(self) -> float:
        total = self.item.total
        return round(100 * self.item.done / total, 1) if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        item = self.item
        return {
            "position": self.position,
            "id": item.id,
            "object": "queue.entry",
            "kind": item.kind,
            "model": item.model or None,
            "priority": item.priority,
            "paused": item.paused,
            "status": item.status,
            "running": item.running,
            "created_at": int(item.created_at.timestamp()),
            "progress": {"done": item.done, "total": item.total, "percent": self.percent},
            "remaining_seconds": item.remaining_seconds,
            "eta_seconds": self.eta_seconds,
        }


def loaded_models() -> set[str]:
    """Models some live worker has loaded now."""
    return set(
        Worker.objects.alive().exclude(loaded_model="").values_list("loaded_model", flat=True)
    )


def queue_entries() -> list[QueueEntry]:
    """Every kind's waiting and running units, merged in claim order, with positions and ETAs."""
    loaded = loaded_models()
    items = [item for kind in kinds.registered() for item in kind.queue_items()]
    items.sort(key=lambda item: item.sort_key(loaded))
    workers = max(Worker.objects.alive().count(), 1)
    entries: list[QueueEntry] = []
    ahead: float | None = 0.0
    for position, item in enumerate(items, start=1):
        eta = None
        own = item.remaining_seconds if item.phase != 0 else 0.0
        if not item.paused and own is not None and ahead is not None:
            ahead += own
            eta = round(ahead / workers, 1)
        elif not item.paused:
            ahead = None  # an unknown duration ahead makes every later ETA unknown
        entries.append(QueueEntry(position, item, eta))
    return entries
