"""``manage.py run_benchmark --dataset … --model … [--model …]``: start a run and wait for it.

The run's batches go through the worker like any batch (a ``qcluster`` must be running), and
this command follows them with a progress bar, then prints the figures per model.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from batchserver.errors import DomainError
from benchmarks import selectors, services
from benchmarks.models import Run

POLL_SECONDS = 1.0


class Command(BaseCommand):
    help = "Run a benchmark (dataset × models) through the batch queue and print its results."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dataset",
            required=True,
            help="dataset id or name (builtin/arithmetic, builtin/capitals), or a .jsonl path",
        )
        parser.add_argument("--model", action="append", required=True, dest="models")
        parser.add_argument("--temperature", default="0")
        parser.add_argument("--max-tokens", default="64")
        parser.add_argument("--top-p", default=None)
        parser.add_argument("--seed", default=None)
        parser.add_argument("--repetitions", default="1")
        parser.add_argument("--scorer", action="append", dest="scorers")
        parser.add_argument("--regex", default="")
        parser.add_argument("--gpu-kind", default=None)
        parser.add_argument("--cloud-price", default=None)
        parser.add_argument("--name", default="")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait")
        parser.add_argument("--no-wait", action="store_true", help="start the run and return")

    def handle(self, *args, **options) -> None:
        try:
            dataset = self._dataset(options["dataset"])
            run = services.start_run(
                dataset,
                options["models"],
                temperature=options["temperature"],
                max_tokens=options["max_tokens"],
                top_p=options["top_p"],
                seed=options["seed"],
                repetitions=options["repetitions"],
                scorers=options["scorers"],
                regex=options["regex"],
                gpu_kind=options["gpu_kind"],
                cloud_price=options["cloud_price"],
                name=options["name"],
                created_by="manage.py run_benchmark",
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"benchmark run {run.pk} started: {dataset.name} × {run.model_names}")
        if options["no_wait"]:
            return
        run = self._wait(run, options["timeout"])
        self._report(run)
        if run.status != Run.Status.COMPLETED:
            raise CommandError(f"benchmark run {run.pk} ended {run.status}")

    def _dataset(self, ref: str):
        path = Path(ref)
        if ref.endswith(".jsonl") and path.is_file():
            name = f"{path.stem} ({time.strftime('%Y-%m-%d %H:%M:%S')})"
            return services.create_dataset_from_upload(name, io.BytesIO(path.read_bytes()))
        return services.get_dataset(ref)

    def _wait(self, run: Run, timeout: float) -> Run:
        deadline = time.monotonic() + timeout
        with tqdm(total=selectors.progress(run).total, unit="req", desc=f"run {run.pk}") as bar:
            while True:
                run.refresh_from_db()
                found = selectors.progress(run)
                bar.total = found.total
                bar.n = found.done
                active = next(
                    (
                        b
                        for b in found.batches
                        if b["status"]
                        not in ("pending", "completed", "failed", "cancelled", "expired", "skipped")
                    ),
                    None,
                )
                bar.set_postfix_str(f"{active['model']} r{active['repetition']}" if active else "")
                bar.refresh()
                if not run.is_active:
                    return run
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"benchmark run {run.pk} still {run.status} after {timeout:.0f} s "
                        "(is a worker running? `manage.py qcluster`)"
                    )
                time.sleep(POLL_SECONDS)

    def _report(self, run: Run) -> None:
        self.stdout.write(f"benchmark run {run.pk}: {run.status}")
        for result in run.results.all():
            figures = selectors.result_data(result)
            quality = ", ".join(f"{k} {v:.2f}" for k, v in result.quality.items() if v is not None)
            speed = figures["output_tokens_per_second"]
            self.stdout.write(
                f"  {result.model}: {result.status}; {result.completed}/{result.requests} "
                f"requests, {result.output_tokens} output tokens in "
                f"{(result.wall_seconds or 0):.1f} s = "
                f"{(speed or 0):.1f} output tok/s; "
                f"p50 {result.latency_p50_ms or 0:.0f} ms, p95 {result.latency_p95_ms or 0:.0f} ms"
                + (f"; {quality}" if quality else "")
                + (f"; error: {result.error}" if result.error else "")
            )
            for rep in result.repetition_figures:
                tps = rep.get("output_tokens_per_second")
                self.stdout.write(
                    f"    repetition {rep['repetition']} ({rep['batch_id']}): "
                    f"{rep['output_tokens']} tokens in {(rep['wall_seconds'] or 0):.1f} s = "
                    f"{(tps or 0):.1f} tok/s"
                )
