"""Delete the prompts and answers of old finished batches (their summaries stay)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from batchserver import audit
from batchserver.errors import DomainError
from jobs.services import retention

BAR = 30


class Command(BaseCommand):
    help = (
        "Purge request rows, chunks, webhook history and files of batches that ended more than "
        "--older-than ago (30d, 12h, 90m), keeping each batch's summary. Runs in slices of rows "
        "without locking the queue; a purge that was killed resumes where it stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, help="e.g. 30d, 12h or 90m")
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args, older_than: str, dry_run: bool, **options):
        try:
            age = retention.parse_age(older_than)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        started = time.monotonic()
        report = retention.purge_batches(age, dry_run=dry_run, progress=self._bar)
        if report.rows and not dry_run:
            self.stdout.write("")
        if report.batches and not dry_run:
            audit.record(
                "manage.py", "retention.purge", f"older than {older_than}", report.summary()
            )
        self.stdout.write(f"{report.summary()} in {time.monotonic() - started:.1f} s")

    def _bar(self, done: int, total: int) -> None:
        filled = int(BAR * done / total) if total else BAR
        line = f"\r[{'#' * filled}{' ' * (BAR - filled)}] {done}/{total} rows"
        self.stdout.write(line, ending="")
        self.stdout.flush()
