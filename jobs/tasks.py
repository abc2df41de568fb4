"""django-q2 entry points. Each takes ids, re-reads the rows, and returns if they moved on."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django_q.tasks import async_task

from jobs import runner
from jobs.engine.manager import get_engine
from jobs.heartbeat import get_heartbeat
from jobs.models import Batch
from jobs.services import files, lifecycle

logger = logging.getLogger(__name__)


def validate_batch(batch_id: str) -> None:
    """Validate a new batch's input and split it into chunks, then start the work."""
    # No select_related: its inner join would hide a batch whose input file was deleted.
    batch = Batch.objects.filter(pk=batch_id).first()
    if batch is None:
        return
    lifecycle.validate_and_split(batch)
    batch.refresh_from_db()
    if batch.status == Batch.Status.IN_PROGRESS:
        run_work()


def settle_batch(batch_id: str) -> None:
    """End a batch that is cancelling, past its window, or has run all its chunks."""
    batch = Batch.objects.filter(pk=batch_id).first()
    if batch is not None:
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
        chunk = runner.claim_chunk(heartbeat.worker_id, engine.loaded_model)
        if chunk is None:
            break
        heartbeat.working_on(chunk.batch_id, chunk.index, engine.loaded_model)
        started = time.monotonic()
        written, tokens = runner.run_chunk(chunk)
        heartbeat.finished_chunk(written, tokens, time.monotonic() - started)
        settle_batch(chunk.batch_id)
        done += 1
    heartbeat.idle(engine.loaded_model)
    if done and runner.runnable_chunks().exists():
        async_task("jobs.tasks.run_work")
    return done


def tick() -> None:
    """Periodic safety net: expire, settle and resume whatever no task is carrying."""
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
