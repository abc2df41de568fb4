"""``manage.py test_model NAME [--prompt …]``: test a model through the batch queue and wait.

The test's batch runs on the worker like any batch (a ``qcluster`` must be running); this
command follows it, then prints the figures and the answers.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from batchserver.errors import DomainError
from models_registry import model_tests, services
from models_registry.models import ModelTest

POLL_SECONDS = 1.0


class Command(BaseCommand):
    help = "Test a model: a few prompts through the ordinary batch pipeline, then its figures."

    def add_arguments(self, parser) -> None:
        parser.add_argument("model")
        parser.add_argument("--prompt", action="append", dest="prompts")
        parser.add_argument("--max-tokens", type=int, default=32)
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait")

    def handle(self, *args, **options) -> None:
        try:
            test = model_tests.start_test(
                services.get_model(options["model"]),
                prompts=options["prompts"],
                max_tokens=options["max_tokens"],
                created_by="manage.py",
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        deadline = time.monotonic() + options["timeout"]
        with tqdm(
            desc=f"test {test.pk}", bar_format="{desc}: {elapsed} {postfix}", file=self.stderr
        ) as bar:
            while test.status == ModelTest.Status.QUEUED:
                if time.monotonic() > deadline:
                    raise CommandError(f"Test {test.pk} is still waiting for the worker.")
                time.sleep(POLL_SECONDS)
                test.refresh_from_db()
                bar.set_postfix_str(test.status)
        data = test.as_dict()
        for answer in data["answers"]:
            self.stdout.write(f"- {answer['prompt']}\n  → {answer['answer'] or answer['error']}")
        names = ("load_seconds", "peak_memory_bytes", "ready_memory_bytes")
        figures = {k: data[k] for k in (*names, "output_tokens_per_second")}
        self.stdout.write(f"figures: {figures}")
        if data["peak_memory_measure"]:
            self.stdout.write(f"peak memory: {data['peak_memory_measure']}")
        if test.status == ModelTest.Status.FAILED:
            raise CommandError(f"Test {test.pk} failed: {test.error}")
        self.stdout.write(self.style.SUCCESS(f"Test {test.pk} of {test.model.name} passed."))
