"""``manage.py curation_split DATASET --validation-fraction 0.1``: mark each record of a
dataset train or validation, with a progress bar."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from batchserver.errors import DomainError
from curation import services
from curation.management.commands._progress import progress_bar


class Command(BaseCommand):
    help = "Split a curation dataset into train and validation at random (repeatable with --seed)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("dataset", help="dataset id")
        parser.add_argument("--validation-fraction", type=float, default=0.1)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options) -> None:
        try:
            dataset = services.get_dataset(options["dataset"])
            with progress_bar(f"split {dataset.name}", "records") as progress:
                services.check_split(options["validation_fraction"])
                params = {
                    "validation_fraction": options["validation_fraction"],
                    "seed": options["seed"],
                }
                counts = services.run_here(dataset, "split", params, progress)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{counts['train']} train, {counts['validation']} validation")
