"""django-q2 entry points. Each takes ids, re-reads the rows, and returns if they moved on.

Thin on purpose: the work lives in services and in the worker runtime. The dotted paths here
are stored in queued broker messages and in the ``tick`` schedule, so they stay put.
"""

from __future__ import annotations

import logging

from batchserver import correlation
from jobs import webhooks
from jobs.models import Batch
from jobs.services import files, lifecycle, retention
from jobs.worker import loop

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


def settle_batch(batch_id: str) -> None:
    """End a batch that is cancelling, past its window, or has run all its chunks."""
    lifecycle.settle_by_id(batch_id)


def run_work() -> int:
    """Claim and run units of GPU work for one time slice (``jobs.worker.loop``)."""
    return loop.run_work()


def tick() -> None:
    """Periodic safety net: expire, settle and resume whatever no task is carrying."""
    loop.tick()


def cleanup_expired_files() -> str:
    """Remove expired files (periodic)."""
    report = files.cleanup_expired_files()
    return f"removed {report.files} files, {report.bytes} bytes"


def deliver_webhook(delivery_id: str) -> str | None:
    """Make one attempt at a due webhook message (a later one is scheduled if it fails)."""
    return webhooks.deliver(delivery_id)


def deliver_overdue_webhooks() -> int:
    """Periodic: send pending webhook messages whose one-off schedule was lost."""
    return webhooks.deliver_overdue()


def purge_old_batches() -> str:
    """Daily: purge prompts and answers past ``BATCH_RETENTION_DAYS`` (off when 0)."""
    report = retention.purge_by_retention_setting()
    return report.summary() if report else "retention off"
