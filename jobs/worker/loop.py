"""The GPU worker's run loop: claim the best unit of any kind, run it, repeat for one slice.

A django-q2 task (``jobs.tasks.run_work``) runs ``run_work``: for up to
``BATCH_TASK_SLICE_SECONDS`` it claims units of registered kinds (``jobs.worker.kinds``) in
priority-then-age order and runs them, then hands over to a fresh task if work remains. Between
units the choice is made again, so a cancel, a pause or higher-priority work takes effect at the
next unit boundary, and an operator's restart request is honoured there.
"""

from __future__ import annotations

import logging
import os
import time

from django.conf import settings
from django_q.brokers import Broker, get_broker
from django_q.tasks import async_task

from batchserver import correlation
from jobs.worker import kinds
from jobs.worker.control import take_restart_request
from jobs.worker.engine.base import EngineError, ModelSpec
from jobs.worker.engine.manager import EngineManager, get_engine
from jobs.worker.heartbeat import Heartbeat, get_heartbeat, worker_id

logger = logging.getLogger(__name__)
# The task that runs this loop (kept at its first dotted path: queued messages carry it).
RUN_WORK_TASK = "jobs.tasks.run_work"


def claim_next(worker: str, loaded_model: str | None) -> tuple[kinds.WorkKind, kinds.Unit] | None:
    """Claim the best unit across kinds: priority, then age (``Candidate.sort_key``)."""
    registered = kinds.registered()
    if len(registered) == 1:  # one kind (the common case): no need to compare heads
        unit = registered[0].claim(worker, loaded_model)
        return (registered[0], unit) if unit else None
    heads = [c for k in registered if (c := k.peek(worker, loaded_model)) is not None]
    for head in sorted(heads, key=kinds.Candidate.sort_key):
        kind = kinds.get(head.kind)
        unit = kind.claim(worker, loaded_model)
        if unit is not None:
            return kind, unit
    return None


def has_work() -> bool:
    return any(kind.has_work() for kind in kinds.registered())


def run_work() -> int:
    """Claim and run units for one time slice; returns how many ran."""
    heartbeat = get_heartbeat()
    engine = get_engine()
    deadline = time.monotonic() + settings.BATCH_TASK_SLICE_SECONDS
    done = 0
    restore: ModelSpec | None = None  # the model to load again after exclusive work
    while time.monotonic() < deadline:
        restart_engine_if_requested(heartbeat.worker_id, engine)
        claimed = claim_next(heartbeat.worker_id, engine.loaded_model)
        if claimed is None:
            break
        kind, unit = claimed
        fan_out()
        if kind.exclusive:
            restore = restore or engine.loaded
        else:
            restore = None  # the unit loads the model it needs
        with correlation.bind(unit.correlation_id):
            outcome = run_unit(kind, unit, heartbeat, engine, deadline)
        if kind.exclusive and outcome.load_after is not None:
            restore = outcome.load_after  # e.g. a training's result: what is asked for next
        done += 1
        if outcome.more:
            break  # a long unit handed back at its slice's end: the next task continues it
    if restore is not None and engine.loaded is None:
        reload_after_exclusive(engine, restore)
    heartbeat.idle(engine.loaded_model)
    if done and has_work():
        async_task(RUN_WORK_TASK)
    return done


def run_unit(
    kind: kinds.WorkKind,
    unit: kinds.Unit,
    heartbeat: Heartbeat,
    engine: EngineManager,
    deadline: float,
) -> kinds.Outcome:
    """Run one claimed unit; an exclusive one gets the GPU alone (the engine stopped first)."""
    if kind.exclusive and engine.loaded is not None:
        logger.info("worker: stopping the engine (%s) for %s", engine.loaded_model, unit.label)
        engine.shutdown()  # returns once the group is gone and its GPU memory is back
    heartbeat.working_on(unit, engine.loaded_model or unit.model, kind.exclusive)
    started = time.monotonic()
    try:
        outcome = kind.run(unit, kinds.Slice(heartbeat.worker_id, engine, deadline))
    except BaseException:
        kind.release(unit)
        raise
    outcome.seconds = outcome.seconds or time.monotonic() - started
    if outcome.more:
        kind.release(unit)
    heartbeat.finished_chunk(outcome.items, outcome.output_tokens, outcome.seconds)
    kind.after_unit(unit, outcome)
    return outcome


def reload_after_exclusive(engine: EngineManager, spec: ModelSpec) -> None:
    """Load the model the engine had before exclusive work (or the one that work named in
    ``Outcome.load_after``), unless exclusive work is next."""
    if any(k.exclusive and k.has_work() for k in kinds.registered()):
        return
    try:
        engine.ensure_loaded(spec)
    except EngineError as exc:  # the next unit that needs it will try (and report) again
        logger.warning("worker: could not load %s again after exclusive work: %s", spec.name, exc)


def restart_engine_if_requested(worker: str, engine: EngineManager | None = None) -> None:
    """Honour an operator's restart request: the engine reloads on next use."""
    if take_restart_request(worker):
        logger.warning("worker %s: restarting its engine as requested", worker)
        (engine or get_engine()).shutdown()


def fan_out() -> None:
    """Keep one run_work task waiting in the broker while claimable units remain.

    A task runs in one worker process, and the continuation at the end of a slice is one task:
    alone, it would keep a single worker busy while the others idle. Topping the broker up to
    one *waiting* task at every unit boundary hands each idle worker a task within a unit or
    two, and the queue stays bounded; a task that finds nothing to claim returns at once.
    Inline tasks (``sync``) would recurse: skipped.
    """
    if settings.Q_CLUSTER.get("sync") or not has_work():
        return
    if _broker().queue_size() == 0:
        async_task(RUN_WORK_TASK)


_broker_of_pid: dict[int, Broker] = {}


def _broker() -> Broker:
    """This process's django-q2 broker (the one ``async_task`` uses), made once per process."""
    pid = os.getpid()
    if pid not in _broker_of_pid:
        _broker_of_pid[pid] = get_broker()
    return _broker_of_pid[pid]


def tick() -> None:
    """Periodic safety net: restart if asked, let every kind finish what nothing carries."""
    restart_engine_if_requested(worker_id())  # an idle worker restarts too
    for kind in kinds.registered():
        kind.tick()
    if has_work():
        async_task(RUN_WORK_TASK)
