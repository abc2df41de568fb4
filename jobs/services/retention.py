"""Data retention: delete the prompts and answers of old batches, keep their summaries.

A purged batch keeps its row — status, counts, tokens, times, file ids — so history, metrics
and the API still answer for it; its request rows, chunks, webhook history and files (input,
output, error) are deleted. Rows go in slices of ``RETENTION_SLICE_ROWS``, each its own short
transaction on rows of a finished batch only, so memory stays bounded whatever the size and no
worker's claim ever waits on the purge.

A purge killed midway resumes: ``Batch.purge_started_at`` is set before the first row goes and
``purged_at`` only after the last file, and the next run takes half-purged batches first. Until
then the batch shows as "purging" (its answers incomplete), never as complete and intact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from batchserver import audit, live
from batchserver.errors import Invalid
from jobs.models import Batch, BatchChunk, BatchRequest, File, WebhookDelivery
from jobs.services.files import delete_file

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (rows deleted so far, rows to delete in all)


@dataclass
class PurgeReport:
    batches: list[str] = field(default_factory=list)
    rows: int = 0
    files: int = 0
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would purge" if self.dry_run else "purged"
        return f"{verb} {len(self.batches)} batch(es): {self.rows} request rows, {self.files} files"


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m`` or a number of days, as a duration (at least a minute)."""
    raw = (text or "").strip().lower()
    units = {"d": 86_400, "h": 3_600, "m": 60}
    try:
        seconds = float(raw[:-1]) * units[raw[-1]] if raw[-1:] in units else float(raw) * 86_400
    except (ValueError, IndexError):
        raise Invalid(
            f"older_than: {text!r} is not an age; use e.g. 30d, 12h or 90m.", param="older_than"
        ) from None
    if seconds < 60:
        raise Invalid("older_than must be at least a minute.", param="older_than")
    return timedelta(seconds=seconds)


def purgeable(older_than: timedelta):
    return Batch.objects.purgeable(timezone.now() - older_than)


def _files_of(batch: Batch) -> list[File]:
    """The batch's files; an input file another kept batch still uses stays."""
    ids = [batch.output_file_id, batch.error_file_id]
    shared = (
        Batch.objects.filter(input_file_id=batch.input_file_id, purged_at__isnull=True)
        .exclude(pk=batch.pk)
        .exists()
    )
    if not shared:
        ids.append(batch.input_file_id)
    return list(File.objects.filter(pk__in=[i for i in ids if i]))


def purge_batch(
    batch: Batch, progress: Progress | None = None, done_before: int = 0
) -> tuple[int, int]:
    """Delete one batch's rows in slices, then its chunks, webhooks and files; (rows, files)."""
    batch.start_purge()
    slice_rows = max(1, int(settings.RETENTION_SLICE_ROWS))
    rows = 0
    total = done_before + BatchRequest.objects.filter(batch=batch).count()
    while True:
        ids = list(
            BatchRequest.objects.filter(batch=batch).values_list("pk", flat=True)[:slice_rows]
        )
        if not ids:
            break
        with transaction.atomic():
            BatchRequest.objects.filter(pk__in=ids).delete()
        rows += len(ids)
        if progress:
            progress(done_before + rows, total)
    files = _files_of(batch)
    with transaction.atomic():
        BatchChunk.objects.filter(batch=batch).delete()
        WebhookDelivery.objects.filter(batch=batch).delete()
        for file in files:
            delete_file(file)
        batch.finish_purge()
    logger.info("purged batch %s: %d request rows, %d files", batch.pk, rows, len(files))
    return rows, len(files)


def purge_batches(
    older_than: timedelta, *, dry_run: bool = False, progress: Progress | None = None
) -> PurgeReport:
    """Purge every finished batch that ended more than ``older_than`` ago."""
    report = PurgeReport(dry_run=dry_run)
    batches = list(
        purgeable(older_than).only(
            "id", "input_file_id", "output_file_id", "error_file_id", "purge_started_at"
        )
    )
    if dry_run:
        report.batches = [b.pk for b in batches]
        report.rows = BatchRequest.objects.filter(batch__in=batches).count()
        report.files = sum(len(_files_of(b)) for b in batches)
        return report
    total = BatchRequest.objects.filter(batch__in=batches).count()
    for batch in batches:
        rows, files = purge_batch(
            batch,
            (lambda done, _all: progress(done, total)) if progress else None,
            report.rows,
        )
        report.batches.append(batch.pk)
        report.rows += rows
        report.files += files
    return report


def purge_by_retention_setting() -> PurgeReport | None:
    """The daily schedule: purge per ``BATCH_RETENTION_DAYS`` (live); None when it is off."""
    days = int(live.get("BATCH_RETENTION_DAYS") or 0)
    if days <= 0:
        return None
    report = purge_batches(timedelta(days=days))
    if report.batches:
        audit.record("schedule", "retention.purge", f"older than {days}d", report.summary())
    return report
