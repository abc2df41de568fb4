"""Kinds of GPU work: the interface through which any app hands work to the GPU worker.

The worker runtime knows nothing of batches, benchmarks or training. An app describes one kind
of work with a ``WorkKind`` and registers it once (``register(kind)`` in its ``AppConfig.ready``);
the worker then, between units, asks every kind for the head of its queue, takes the best by
**priority, then age** (``Candidate.sort_key``), claims it under a lease, runs it, and lets the
heartbeat extend every kind's leases while it runs.

A unit is claimed, not assumed: ``claim`` must lease the unit to the worker in one
compare-and-swap (``SELECT … FOR UPDATE SKIP LOCKED`` or a conditional ``UPDATE``), so two
workers never run the same unit, and a unit whose worker died becomes claimable again once its
lease runs out. ``run`` gets a ``Slice``: the engine (or, for an ``exclusive`` kind, the promise
that the engine is stopped and its memory is back), a deadline, and ``should_stop`` to check
between steps. A long unit returns ``Outcome(more=True)`` at the deadline after checkpointing
its progress; it is released and claimed again by the next task (on any worker), so no task runs
for long and a killed worker loses at most one slice.

Exclusive kinds (training) need the GPU alone: the runtime stops the engine (and waits until its
process group is gone and its memory is back) before ``run``, and loads the engine's model
again after the last exclusive slice, when non-exclusive work or idleness follows — or the
model the slice named in ``Outcome.load_after`` (a training's result).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Candidate:
    """The head of a kind's queue: what the worker compares across kinds before claiming."""

    kind: str
    priority: int
    created_at: datetime
    model: str = ""  # the model it needs loaded ("" when it needs none, e.g. training)

    def sort_key(self) -> tuple:
        """Higher priority first, then older first; the kind name breaks exact ties."""
        return (-self.priority, self.created_at, self.kind)


@dataclass
class Unit:
    """A claimed piece of work, leased to this worker until it is done or released."""

    kind: str
    id: str  # stable id of the unit (e.g. "batch_…#3", "ftjob-…"), for logs and heartbeats
    model: str = ""
    correlation_id: str = ""
    label: str = ""  # what the workers page shows, e.g. "batch_… chunk 3"
    batch_id: str = ""  # set for batch chunks (the Worker row shows it to clients)
    chunk: int | None = None
    payload: Any = None  # the kind's own handle on the unit (a model instance, an id…)


@dataclass
class Slice:
    """What ``run`` gets: the engine, a deadline, and a cheap way to ask whether to stop."""

    worker_id: str
    engine: Any  # jobs.worker.engine.manager.EngineManager (stopped for exclusive kinds)
    deadline: float  # time.monotonic() value after which a long unit should checkpoint
    should_stop: Callable[[], bool] = field(default=lambda: False)

    def time_left(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class Outcome:
    """What a slice did. ``more``: the unit is not finished and wants another slice."""

    items: int = 0  # requests answered, steps trained…
    output_tokens: int = 0
    seconds: float = 0.0
    more: bool = False
    warm: bool = True  # False when the slice included a model load (throughput not comparable)
    # Exclusive work only: the model (a ModelSpec) the engine loads once the GPU is free again,
    # in place of the one it had before (e.g. the model a training just made: the next
    # requests name it, and loading the old one first would cost a second load).
    load_after: Any = None


@dataclass(frozen=True)
class QueueItem:
    """One waiting or running unit as the queue shows it (one row per batch, per job)."""

    kind: str
    id: str
    owner_id: int | None
    model: str
    priority: int
    created_at: datetime
    status: str
    running: bool
    paused: bool
    done: int
    total: int
    phase: int = 1  # 0: finishing (holds no GPU work), 1: waiting or running, 2: paused
    remaining_seconds: float | None = None
    url: str = ""  # the unit's console page
    extra: dict[str, Any] = field(default_factory=dict)

    def sort_key(self, loaded: set[str]) -> tuple:
        """The claim order (``Candidate.sort_key``), with a loaded model first among equals."""
        prefers_loaded = 0 if self.model and self.model in loaded else 1
        return (self.phase, -self.priority, prefers_loaded, self.created_at, self.id)


class WorkKind(ABC):
    """One kind of GPU work. Subclass it, then ``register`` an instance once per process."""

    name: str = ""
    exclusive: bool = False  # True: needs the GPU alone (the engine is stopped first)

    @abstractmethod
    def peek(self, worker_id: str, loaded_model: str | None) -> Candidate | None:
        """The unit this worker would claim next, without claiming it (None: nothing waits)."""

    @abstractmethod
    def claim(self, worker_id: str, loaded_model: str | None) -> Unit | None:
        """Lease the next unit to ``worker_id`` (compare-and-swap); None if another worker won."""

    @abstractmethod
    def run(self, unit: Unit, work: Slice) -> Outcome:
        """Run (a slice of) a claimed unit; commit its results; never raise for bad input."""

    @abstractmethod
    def extend_leases(self, worker_id: str, until: datetime) -> int:
        """Push the leases of units this live worker holds to ``until`` (the heartbeat)."""

    @abstractmethod
    def release(self, unit: Unit) -> None:
        """Give a unit back unfinished (a slice ended, or the worker stops): claimable again."""

    @abstractmethod
    def requeue_orphans(self, gone_worker_ids: list[str]) -> int:
        """Make units held by gone workers, or with expired leases, claimable now."""

    @abstractmethod
    def has_work(self) -> bool:
        """Whether any unit is claimable now (cheap: used to keep tasks flowing)."""

    def warm_model(self, worker_id: str) -> Any | None:
        """The ``ModelSpec`` a freshly started worker should load before work arrives, if any
        (``jobs.worker.warm``); None leaves the choice to the next kind."""
        return None

    def after_unit(self, unit: Unit, outcome: Outcome) -> None:  # noqa: B027 (optional hook)
        """Called after every slice, outside the slice's transaction (e.g. settle a batch)."""

    def queue_items(self) -> list[QueueItem]:
        """Units waiting or running, for ``/v1/queue`` and the queue page."""
        return []

    def tick(self) -> None:  # noqa: B027 (optional hook)
        """Periodic safety net (every minute): finish what no task is carrying."""


_kinds: dict[str, WorkKind] = {}


def register(kind: WorkKind) -> None:
    """Make ``kind`` known to the worker runtime (idempotent per name)."""
    if not kind.name:
        raise ValueError("a WorkKind needs a name")
    _kinds[kind.name] = kind


def unregister(name: str) -> None:
    _kinds.pop(name, None)


def registered() -> list[WorkKind]:
    return list(_kinds.values())


def get(name: str) -> WorkKind:
    return _kinds[name]
