"""``manage.py curation_export DATASET --format finetune``: export a dataset as a Files API file,
with a progress bar (the dataset's row on /curation shows it too); ``--output`` also writes the
file's bytes to a path."""

from __future__ import annotations

import shutil

from django.core.management.base import BaseCommand, CommandError

from batchserver.errors import DomainError
from curation import services
from curation.management.commands._progress import progress_bar
from jobs.services.files import open_file


class Command(BaseCommand):
    help = (
        "Export a curation dataset (fine-tuning JSONL, few-shot pack, gold set, preference pairs "
        "or a plugin's format) as a Files API file; shows a progress bar."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("dataset", help="dataset id")
        parser.add_argument(
            "--format",
            required=True,
            help="finetune, icl, gold, dpo or plugin:<id> (see /v1/curation/export-formats)",
        )
        parser.add_argument("--only", default=None, help="accepted, gold, all or not_rejected")
        parser.add_argument("--split", default="", help="train or validation")
        parser.add_argument("--k", type=int, default=3, help="examples per label (icl)")
        parser.add_argument("--benchmark-name", default="", help="gold: also a benchmark dataset")
        parser.add_argument("--output", default="", help="also write the file to this path")

    def handle(self, *args, **options) -> None:
        try:
            dataset = services.get_dataset(options["dataset"])
            params = {
                "fmt": options["format"],
                "only": options["only"],
                "split": options["split"],
                "k": options["k"],
                "benchmark_name": options["benchmark_name"],
            }
            services.check_export(params["fmt"], params["k"], params["only"], params["split"])
            with progress_bar(f"export {dataset.name}", "records") as progress:
                result = services.run_here(dataset, "export", params, progress)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"{result['lines']} line(s) in file {result['file_id']} ({result['filename']})"
            + (f", {result['skipped']} record(s) skipped" if result["skipped"] else "")
            + (
                f", benchmark dataset {result['benchmark_dataset_id']}"
                if result["benchmark_dataset_id"]
                else ""
            )
        )
        if options["output"]:
            with open_file(result["file_id"]) as source, open(options["output"], "wb") as target:
                shutil.copyfileobj(source, target)
            self.stdout.write(f"written to {options['output']}")
