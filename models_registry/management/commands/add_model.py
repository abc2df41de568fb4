"""``manage.py add_model --folder PATH | --gguf FILE | --hub ORG/NAME [--name ID] [--dtype …]``.

A folder is checked and registered at once. A GGUF conversion or a hub download runs in the
worker (a ``qcluster`` must be running) and this command follows it with a progress bar.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from batchserver.errors import DomainError
from models_registry import adding
from models_registry.models import Model, ModelImport

POLL_SECONDS = 1.0


class Command(BaseCommand):
    help = "Add a model from a folder, a GGUF file or a hub id (checked before it is registered)."

    def add_arguments(self, parser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--folder", help="a Hugging Face model folder on this machine")
        source.add_argument("--gguf", help="a .gguf file, converted into the data folder")
        source.add_argument("--hub", help="a hub repo id (org/name), downloaded")
        parser.add_argument("--name", default="", help="the served id (default: the source)")
        parser.add_argument("--kind", choices=["generate", "embed"], default=None)
        parser.add_argument("--description", default="")
        parser.add_argument("--dtype", default=None)
        parser.add_argument("--max-model-len", type=int, default=None)
        parser.add_argument("--quantization", default=None)
        parser.add_argument("--timeout", type=float, default=24 * 3600, help="seconds to wait")

    def handle(self, *args, **options) -> None:
        kind, source = next(
            (k, options[k]) for k in ("folder", "gguf", "hub") if options.get(k) is not None
        )
        try:
            found = adding.add_model(
                source_kind=kind,
                source=source,
                name=options["name"],
                kind=options["kind"],
                description=options["description"],
                dtype=options["dtype"],
                max_model_len=options["max_model_len"],
                quantization=options["quantization"],
                created_by="manage.py",
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        if isinstance(found, Model):
            self.stdout.write(self.style.SUCCESS(f"Model {found.name} added ({found.path})."))
            return
        job = self._follow(found, options["timeout"])
        if job.status == ModelImport.Status.FAILED:
            raise CommandError(job.error)
        self.stdout.write(self.style.SUCCESS(f"Model {job.name} added ({job.model.path})."))

    def _follow(self, job: ModelImport, timeout: float) -> ModelImport:
        deadline = time.monotonic() + timeout
        with tqdm(desc=job.name, unit="B", unit_scale=True, file=self.stderr) as bar:
            while True:
                job.refresh_from_db()
                bar.set_postfix_str(job.status)
                if job.total_bytes:
                    bar.total = job.total_bytes
                    bar.update(job.done_bytes - bar.n)
                if not job.is_active:
                    return job
                if time.monotonic() > deadline:
                    raise CommandError(f"Import {job.pk} is still {job.status}; it goes on.")
                time.sleep(POLL_SECONDS)
