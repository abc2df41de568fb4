"""``manage.py curation_dedupe DATASET``: remove repeated prompt + answer pairs from a dataset,
with a progress bar."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from batchserver.errors import DomainError
from curation import services
from curation.management.commands._progress import progress_bar


class Command(BaseCommand):
    help = "Remove all but the first record of each identical prompt + answer from a dataset."

    def add_arguments(self, parser) -> None:
        parser.add_argument("dataset", help="dataset id")

    def handle(self, *args, **options) -> None:
        try:
            dataset = services.get_dataset(options["dataset"])
            with progress_bar(f"de-duplicate {dataset.name}", "duplicates") as progress:
                found = services.run_here(dataset, "dedupe", {}, progress)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{found['removed']} duplicate(s) removed")
