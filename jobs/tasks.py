"""django-q2 entry points. Each takes ids, re-reads the rows, and returns if they moved on."""

from __future__ import annotations

import logging
import os
import time

from django.conf import settings
from django_q.brokers import Broker, get_broker
from django_q.tasks import async_task

from batchserver import correlation
from jobs import runner
from jobs.models import Batch
from jobs.services import files, lifecycle, scheduling
from jobs.services.recovery import db_retry
from jobs.worker.engine.manager import get_engine
from jobs.worker.heartbeat import get_heartbeat
from models_registry.services import record_throughput

logger = logging.getLogger(__name__)


def validate_batch(batch_id: str) -> None:
    """Validate a new batch's input and split it into chunks, then start the work."""
    # No select_related: its inner join would hide a batch whose input file was deleted.
    batch = Batch.objects.filter(pk=batch_id).first()
    if batch is None:
        return
    with correlation.bind(batch.correlation_id):
        lifecycle.validate_and_split(batch)
        batch.refresh_from_db()
        logger.info("batch %s validated: %s", batch.id, batch.status)
    if batch.status == Batch.Status.IN_PROGRESS:
        run_work()


@db_retry("settling a batch")
def settle_batch(batch_id: str) -> None:
    """End a batch that is cancelling, past its window, or has run all its chunks."""
    batch = Batch.objects.filter(pk=batch_id).first()
    if batch is not None:
        with correlation.bind(batch.correlation_id):
            lifecycle.settle(batch)


def run_work() -> int:
    """Claim and run chunks for one time slice, then hand over to a fresh task if work remains.

    Between chunks the choice is made again, so a cancel, an expiry or a higher-priority batch
    takes effect at the next chunk boundary.
    """
    heartbeat = get_heartbeat()
    engine = get_engine()
    deadline = time.monotonic() + settings.BATCH_TASK_SLICE_SECONDS
    done = 0
    while time.monotonic() < deadline:
        _restart_engine_if_requested(heartbeat.worker_id)
        chunk = runner.claim_chunk(heartbeat.worker_id, engine.loaded_model)
        if chunk is None:
            break
        _fan_out()
        with correlation.bind(chunk.batch.correlation_id):
            heartbeat.working_on(chunk.batch_id, chunk.index, engine.loaded_model)
            warm = engine.loaded_model == chunk.batch.model
            started = time.monotonic()
            written, tokens = runner.run_chunk(chunk)
            seconds = time.monotonic() - started
            heartbeat.finished_chunk(written, tokens, seconds)
            if warm:  # a chunk that loaded the model first would understate its speed
                record_throughput(chunk.batch.model, tokens, seconds)
            logger.info(
                "batch %s chunk %d: %d requests, %d output tokens in %.2f s",
                chunk.batch_id,
                chunk.index,
                written,
                tokens,
                seconds,
                extra={"batch_id": chunk.batch_id, "chunk": chunk.index},
            )
            settle_batch(chunk.batch_id)
        done += 1
    heartbeat.idle(engine.loaded_model)
    if done and runner.runnable_chunks().exists():
        async_task("jobs.tasks.run_work")
    return done


def _restart_engine_if_requested(worker_id: str) -> None:
    """Honour an operator's restart request between chunks: the engine reloads on next use."""
    if scheduling.take_restart_request(worker_id):
        logger.warning("worker %s: restarting its engine as requested", worker_id)
        get_engine().shutdown()


def _fan_out() -> None:
    """Keep one run_work task waiting in the broker while chunks that nobody holds remain.

    A task runs in one worker process, and the continuation at the end of a slice is one task:
    alone, it would keep a single worker busy while the others idle. Topping the broker up to
    one *waiting* task at every chunk boundary hands each idle worker a task within a chunk or
    two, and the queue stays bounded (a waiting task is only added when none waits); a task
    that finds nothing to claim returns at once. Inline tasks (``sync``) would recurse: skipped.
    """
    if settings.Q_CLUSTER.get("sync") or not runner.runnable_chunks().exists():
        return
    if _broker().queue_size() == 0:
        async_task("jobs.tasks.run_work")


_broker_of_pid: dict[int, Broker] = {}


def _broker() -> Broker:
    """This process's django-q2 broker (the one ``async_task`` uses), made once per process."""
    pid = os.getpid()
    if pid not in _broker_of_pid:
        _broker_of_pid[pid] = get_broker()
    return _broker_of_pid[pid]


def tick() -> None:
    """Periodic safety net: expire, settle and resume whatever no task is carrying."""
    _restart_engine_if_requested(runner.worker_id())  # an idle worker restarts too
    for batch in Batch.objects.past_window():
        lifecycle.settle(batch)
    for batch in Batch.objects.filter(
        status__in=(Batch.Status.CANCELLING, Batch.Status.FINALIZING)
    ):
        lifecycle.settle(batch)
    for batch in Batch.objects.filter(status=Batch.Status.VALIDATING):
        lifecycle.validate_and_split(batch)
    for batch in Batch.objects.filter(status=Batch.Status.IN_PROGRESS).exclude(
        chunks__status__in=("pending", "leased")
    ):
        lifecycle.settle(batch)
    if runner.runnable_chunks().exists():
        async_task("jobs.tasks.run_work")


def cleanup_expired_files() -> str:
    """Remove expired files (periodic)."""
    report = files.cleanup_expired_files()
    return f"removed {report.files} files, {report.bytes} bytes"


def deliver_webhook(delivery_id: str) -> str | None:
    """Make one attempt at a due webhook message (a later one is scheduled if it fails)."""
    from jobs import webhooks

    return webhooks.deliver(delivery_id)


def deliver_overdue_webhooks() -> int:
    """Periodic: send pending webhook messages whose one-off schedule was lost."""
    from jobs import webhooks

    return webhooks.deliver_overdue()
