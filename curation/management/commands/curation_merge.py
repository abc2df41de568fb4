"""``manage.py curation_merge --dataset 1 --dataset 2 --name both``: a new dataset with the
records of several, with a progress bar."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from batchserver.errors import DomainError
from curation import services
from curation.management.commands._progress import progress_bar


class Command(BaseCommand):
    help = "Merge curation datasets into a new one (each record once); shows a progress bar."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dataset", action="append", required=True, dest="datasets")
        parser.add_argument("--name", required=True, help="the new dataset's name")

    def handle(self, *args, **options) -> None:
        try:
            sources = [services.get_dataset(i) for i in options["datasets"]]
            with progress_bar(f"merge into {options['name']}", "memberships") as progress:
                merged = services.merge_here(
                    sources, options["name"], progress, created_by="manage.py"
                )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"dataset {merged.pk} '{merged.name}': {merged.memberships.count()} record(s)"
        )
