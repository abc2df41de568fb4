"""Writes on batches that the API and the admin call: create, cancel."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from batchserver import correlation, live
from batchserver.errors import Conflict, Invalid, NotFound
from batchserver.models import ApiKey
from jobs.models import Batch, File, WebhookSubscription
from plugins.services import check_batch_plugins

_WINDOW = re.compile(r"^(\d+)([mhd])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


def window_seconds(window: str) -> int | None:
    """Seconds of a completion window like ``24h`` if the operator allows it, else None."""
    match = _WINDOW.match(window or "")
    if not match or window not in live.get("BATCH_COMPLETION_WINDOWS"):
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def enqueue(func: str, *args: Any) -> None:
    """Hand a task to the worker once the current transaction has committed."""
    transaction.on_commit(lambda: async_task(func, *args))


def batch_input_file(owner: ApiKey, input_file_id: str) -> File:
    """The key's file named as a batch input: 404 if it is not theirs, 400 if not purpose batch."""
    file = File.objects.owned_by(owner).filter(id=input_file_id).first()
    if file is None:
        raise NotFound("file", input_file_id, param="input_file_id")
    if file.purpose != File.Purpose.BATCH:
        raise Invalid(
            f"File {input_file_id} has purpose '{file.purpose}'; a batch input file must be "
            "uploaded with purpose 'batch'.",
            param="input_file_id",
            code="invalid_file_purpose",
        )
    return file


@transaction.atomic
def create_batch(
    owner: ApiKey,
    *,
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    metadata: dict[str, str] | None = None,
    output_expires_after: int | None = None,
    priority: int = 0,
    parent: Batch | None = None,
    webhook_url: str = "",
    webhook_progress_percent: int | None = None,
) -> Batch:
    """Create a batch in ``validating``; the worker checks every line of its input next.

    ``webhook_url`` must have passed ``jobs.webhooks.check_webhook_url`` (the API serializer
    does it, outside this transaction: it resolves a host name).
    """
    input_file = batch_input_file(owner, input_file_id)
    check_batch_plugins(metadata)  # a batch that names a plugin this server has not enabled
    seconds = window_seconds(completion_window)
    if seconds is None:
        allowed = ", ".join(repr(w) for w in live.get("BATCH_COMPLETION_WINDOWS"))
        raise Invalid(
            f"completion_window must be one of {allowed}.",
            param="completion_window",
            code="invalid_value",
        )
    now = timezone.now()
    batch = Batch.objects.create(
        owner=owner,
        input_file=input_file,
        endpoint=endpoint,
        completion_window=completion_window,
        created_at=now,
        expires_at=now + timedelta(seconds=seconds),
        metadata=metadata,
        output_expires_after=output_expires_after,
        priority=priority,
        parent=parent,
        webhook_url=webhook_url,
        # The API request's id (X-Request-ID) follows the batch into every task and log line.
        correlation_id=correlation.get() or correlation.new_id(),
    )
    if webhook_progress_percent:
        WebhookSubscription.objects.create(batch=batch, progress_percent=webhook_progress_percent)
    enqueue("jobs.tasks.validate_batch", batch.id)
    return batch


@transaction.atomic
def request_cancel(batch: Batch) -> Batch:
    """Ask for a cancel: the batch is ``cancelling`` until the worker settles what is finished."""
    if batch.status not in (Batch.Status.VALIDATING, Batch.Status.IN_PROGRESS):
        raise Conflict(
            f"Cannot cancel a batch with status '{batch.status}'.",
            param="batch_id",
            code="batch_not_cancellable",
        )
    if not batch.transition(Batch.Status.CANCELLING):
        return request_cancel(batch)  # it moved meanwhile: answer from its new status
    enqueue("jobs.tasks.settle_batch", batch.id)
    return batch
