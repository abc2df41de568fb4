"""Output and error JSONL, assembled from the request rows when a batch ends.

Files are written under a temporary name, flushed to disk and only then published (moved into
place, or uploaded whole to an object store: ``batchserver.storage.publish``) and registered, so
no reader ever sees a partial output file. Output file ids derive from the batch
id, so a re-run after a crash overwrites its own half-finished attempt instead of leaking one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum

from batchserver.storage import discard, publish
from jobs.models import Batch, BatchRequest, File

R = BatchRequest.Status
_ERROR_MESSAGES = {
    R.EXPIRED: (
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    ),
    R.CANCELLED: ("batch_cancelled", "This request was not executed: the batch was cancelled."),
}


WRITE_LINES = 2000

OUTPUT_FIELDS = (
    "id",
    "custom_id",
    "status",
    "public_id",
    "request_id",
    "response_status",
    "response_body",
    "error",
)


def output_rows(queryset) -> Iterator[Any]:
    """The rows of ``queryset`` in input order, as named tuples of what ``output_line`` reads
    (no model instance per row: for a large batch that was most of the assembly time)."""
    rows = queryset.order_by("line").values_list(*OUTPUT_FIELDS, named=True)
    return rows.iterator(chunk_size=2000)


def output_line(row: Any) -> str:
    """One result line, in the exact shape of OpenAI's batch output and error files.

    ``row``: a ``BatchRequest`` or a row of ``output_rows``.
    """
    if row.response_status is not None:
        body = row.response_body or "null"
        response = (
            f'{{"status_code": {row.response_status}, '
            f'"request_id": {json.dumps(row.request_id)}, "body": {body}}}'
        )
        error = json.dumps(row.error) if row.error else "null"
    else:
        response = "null"
        code, message = _ERROR_MESSAGES.get(row.status, ("internal_error", "Request not run."))
        error = json.dumps(row.error or {"code": code, "message": message})
    return (
        f'{{"id": {json.dumps(row.public_id or f"batch_req_{row.id:024x}")}, '
        f'"custom_id": {json.dumps(row.custom_id)}, "response": {response}, '
        f'"error": {error}}}\n'
    )


def _rows(batch: Batch) -> Iterator[Any]:
    return output_rows(BatchRequest.objects.filter(batch=batch).exclude(status=R.PENDING))


def _derived_file_id(batch: Batch, kind: str) -> str:
    return "file-" + hashlib.sha256(f"{batch.id}:{kind}".encode()).hexdigest()[:24]


def _publish(batch: Batch, kind: str, tmp_path: str, lines: int) -> File:
    """Move a finished temporary file into storage and register it (replacing a stale attempt)."""
    file_id = _derived_file_id(batch, kind)
    File.objects.filter(id=file_id).delete()
    file = File(
        id=file_id,
        owner_id=batch.owner_id,
        purpose=File.Purpose.BATCH_OUTPUT,
        filename=f"{batch.id}_{kind}.jsonl",
        bytes=os.path.getsize(tmp_path),
        line_count=lines,
    )
    seconds = batch.output_expires_after or settings.BATCH_OUTPUT_EXPIRES_SECONDS
    if seconds:
        file.expires_at = file.created_at + timedelta(seconds=seconds)
    storage = file.content.storage
    # On disk: moved into place. On an object store: one upload to the final key, which the
    # store shows only once complete. The row that makes it visible to clients comes after.
    file.content.name = publish(storage, tmp_path, f"files/{file_id}/{file.filename}")
    try:
        file.save(force_insert=True)
    except BaseException:
        discard(storage, file.content.name)  # nothing in storage that no row points to
        raise
    return file


def assemble_files(batch: Batch) -> dict[str, File | None]:
    """Write the output (2xx) and error (everything else) files of a batch from its rows."""
    tmp_dir = settings.FILE_UPLOAD_TEMP_DIR
    handles = {
        kind: tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            dir=tmp_dir,
            delete=False,
            prefix=f".{batch.id}_{kind}.",
            suffix=".partial",
        )
        for kind in ("output", "error")
    }
    counts = {"output": 0, "error": 0}
    pending: dict[str, list[str]] = {"output": [], "error": []}
    try:
        # Lines are written a few thousand at a time: one write per line through the
        # temporary file's wrapper was a tenth of the assembly's time.
        for row in _rows(batch):
            kind = "output" if row.status == R.COMPLETED else "error"
            pending[kind].append(output_line(row))
            counts[kind] += 1
            if len(pending[kind]) >= WRITE_LINES:
                handles[kind].write("".join(pending[kind]))
                pending[kind].clear()
        for kind, lines in pending.items():
            handles[kind].write("".join(lines))
        for handle in handles.values():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        published: dict[str, File | None] = {}
        try:
            for kind, handle in handles.items():
                lines = counts[kind]
                published[kind] = _publish(batch, kind, handle.name, lines) if lines else None
        except BaseException:
            # Both files or neither: an output file without its error file is never registered.
            # The row goes first: once it is gone no client can reach the content, even if
            # the store refuses to delete it now.
            for file in filter(None, published.values()):
                name, storage = file.content.name, file.content.storage
                file.delete()
                discard(storage, name)
            raise
        return published
    finally:
        for handle in handles.values():
            with contextlib.suppress(OSError):  # on a full disk, closing fails to flush too
                handle.close()
            if os.path.exists(handle.name):
                os.unlink(handle.name)


def final_counts(batch: Batch) -> dict[str, int]:
    """Counts and token sums recomputed from the rows (never trusted from increments)."""
    agg = BatchRequest.objects.filter(batch=batch).aggregate(
        total=Count("id"),
        completed=Count("id", filter=Q(status=R.COMPLETED)),
        failed=Count("id", filter=~Q(status__in=(R.COMPLETED, R.PENDING))),
        input_tokens=Sum("input_tokens"),
        output_tokens=Sum("output_tokens"),
    )
    return {
        "request_total": agg["total"],
        "request_completed": agg["completed"],
        "request_failed": agg["failed"],
        "input_tokens": agg["input_tokens"] or 0,
        "output_tokens": agg["output_tokens"] or 0,
    }


def close_out(
    batch: Batch, final_status: str, unfinished: str | None = None, extra: dict | None = None
) -> bool:
    """Settle every pending row as ``unfinished``, write the files, and move to ``final_status``.

    Returns False if another process settled the batch first.
    """
    if unfinished:
        BatchRequest.objects.filter(batch=batch, status=R.PENDING).update(status=unfinished)
    batch.chunks.finish()
    files = assemble_files(batch)
    with transaction.atomic():
        moved = batch.transition(
            final_status,
            output_file=files["output"],
            error_file=files["error"],
            **final_counts(batch),
            **(extra or {}),
        )
        if not moved:
            transaction.set_rollback(True)
    return moved
