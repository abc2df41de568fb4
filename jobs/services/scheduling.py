"""The scheduler's writes: pause, resume and re-prioritise a batch, and the estimates behind ETAs.

The order workers take work in is ``Batch.CLAIM_ORDER`` (one definition, used by the chunk claim
and by the queue); the queue itself is read in ``jobs.worker.queue``.
"""

from __future__ import annotations

import logging

from django.db import transaction

from batchserver.errors import Conflict, Invalid
from jobs.models import Batch
from jobs.services.batches import enqueue
from jobs.worker.loop import RUN_WORK_TASK

logger = logging.getLogger(__name__)
S = Batch.Status
PRIORITY_RANGE = (-100, 100)
# Output tokens assumed per request when neither the body nor the batch's progress tells.
DEFAULT_OUTPUT_TOKENS = 256


def _not_schedulable(batch: Batch, action: str) -> Conflict:
    return Conflict(
        f"Cannot {action} a batch with status '{batch.status}'.",
        param="batch_id",
        code="batch_not_schedulable",
    )


def pause_batch(batch: Batch) -> Batch:
    """Stop handing out the batch's chunks; a chunk already running finishes and is kept."""
    if not batch.set_paused(True):
        raise _not_schedulable(batch, "pause")
    logger.info("batch %s paused", batch.id)
    return batch


def resume_batch(batch: Batch) -> Batch:
    """Let the worker claim the batch's chunks again, and wake it."""
    with transaction.atomic():
        if not batch.set_paused(False):
            raise _not_schedulable(batch, "resume")
        enqueue(RUN_WORK_TASK)
    logger.info("batch %s resumed", batch.id)
    return batch


def set_priority(batch: Batch, priority: int) -> Batch:
    """Change the priority of a queued or running batch; it counts from the next claimed chunk."""
    low, high = PRIORITY_RANGE
    if not low <= priority <= high:
        raise Invalid(f"priority must be between {low} and {high}.", param="priority")
    if not batch.set_priority(priority):
        raise _not_schedulable(batch, "reprioritize")
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


def remaining_output_tokens(batch: Batch, lines: int | None = None) -> float:
    """Output tokens still to generate: the batch's own average so far, else a default.

    ``lines`` is the input file's line count, for a batch still validating (no rows yet).
    """
    if batch.status not in Batch.SCHEDULABLE:
        return 0.0
    remaining = max(batch.request_total - batch.done, 0)
    if batch.status == S.VALIDATING:
        remaining = lines or 0
    per_request = batch.output_tokens / batch.done if batch.done and batch.output_tokens else None
    return remaining * (per_request or DEFAULT_OUTPUT_TOKENS)
