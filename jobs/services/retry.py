"""Retry the lines of a finished batch that did not succeed, as a linked child batch.

The child gets its own input file, written from the parent's rows (original ``custom_id`` and
body, in input order), and then goes through ``create_batch`` like any upload: the worker
validates every line again. The parent and its output are left untouched, so a client joins the
parent's output with the child's on ``custom_id``.
"""

from __future__ import annotations

import json
import tempfile
from typing import IO

from django.conf import settings
from django.core.files import File as DjangoFile
from django.db import transaction

from batchserver.errors import Conflict
from jobs.models import Batch, BatchRequest, File
from jobs.services.batches import create_batch
from jobs.services.files import create_file

R = BatchRequest.Status
# Lines that did not produce an answer the client can use: the engine refused them, the window
# closed first, or the batch was cancelled first. Successes stay in the parent's output.
RETRYABLE = (R.FAILED, R.EXPIRED, R.CANCELLED)
# Any ended batch may be retried; a batch that failed validation has no rows, so nothing to retry.
RETRYABLE_BATCH = Batch.TERMINAL


def _conflict(message: str, code: str) -> Conflict:
    return Conflict(message, param="batch_id", code=code)


def _write_input(parent: Batch, handle: IO[bytes]) -> int:
    """Write the parent's retryable lines as batch input JSONL; returns how many."""
    rows = (
        BatchRequest.objects.filter(batch=parent, status__in=RETRYABLE)
        .order_by("line")
        .only("custom_id", "body")
        .iterator(chunk_size=2000)
    )
    count = 0
    for row in rows:
        line = {"custom_id": row.custom_id, "method": "POST", "url": parent.endpoint}
        line["body"] = json.loads(row.body)
        handle.write((json.dumps(line, ensure_ascii=False) + "\n").encode())
        count += 1
    return count


def retry_batch(
    parent: Batch,
    *,
    completion_window: str | None = None,
    metadata: dict[str, str] | None = None,
    priority: int | None = None,
) -> Batch:
    """Create a child batch of ``parent`` holding only its failed, expired and cancelled lines.

    Raises ``Conflict`` while the parent is still running or when it has nothing to retry.
    Settings not given are inherited from the parent.
    """
    if parent.status not in RETRYABLE_BATCH:
        raise _conflict(
            f"Cannot retry a batch with status '{parent.status}'; wait until it has ended.",
            "batch_not_finished",
        )
    if not BatchRequest.objects.filter(batch=parent, status__in=RETRYABLE).exists():
        raise _conflict(
            f"Batch {parent.id} has no failed, expired or cancelled requests to retry.",
            "nothing_to_retry",
        )
    with tempfile.NamedTemporaryFile(
        dir=settings.FILE_UPLOAD_TEMP_DIR, prefix=f".{parent.id}_retry.", suffix=".jsonl"
    ) as handle:
        count = _write_input(parent, handle)
        handle.flush()
        return _create_child(
            parent,
            DjangoFile(handle, name=f"{parent.id}_retry.jsonl"),
            count,
            completion_window=completion_window or parent.completion_window,
            metadata=parent.metadata if metadata is None else metadata,
            priority=parent.priority if priority is None else priority,
        )


def _create_child(
    parent: Batch,
    content: DjangoFile,
    count: int,
    *,
    completion_window: str,
    metadata: dict[str, str] | None,
    priority: int,
) -> Batch:
    """Store the child's input file and create the child batch, both or neither."""
    stored: File | None = None
    try:
        with transaction.atomic():
            stored = create_file(
                parent.owner,
                content,
                purpose=File.Purpose.BATCH,
                filename=content.name or f"{parent.id}_retry.jsonl",
                expires_after_seconds=settings.FILE_DEFAULT_EXPIRES_SECONDS or None,
                line_count=count,
            )
            return create_batch(
                parent.owner,
                input_file_id=stored.id,
                endpoint=parent.endpoint,
                completion_window=completion_window,
                metadata=metadata,
                output_expires_after=parent.output_expires_after,
                priority=priority,
                parent=parent,
            )
    except BaseException:
        # The row was rolled back; the bytes already in storage must go too.
        if stored is not None:
            stored.content.delete(save=False)
        raise
