"""Plugin overhead: what the hook calls the jobs wiring makes cost, per batch and per line.

With the three shipped plugins enabled, measures on this machine (no server needed; uses the
database of ``DATABASE_URL``, migrated first):

- per batch: ``schema_plan`` + ``parser_plan`` for a batch that names no plugin (what every
  ordinary batch pays, once) — and proof that such a batch costs nothing per line;
- per line, for a batch that opts into Candidate Evaluator: its schema hook through the guard
  (SIGALRM budget, counters), and its parser on an answer;
- per answer: ``rate`` (Quality Rater's rule-based scores).

Compare with the orchestration benchmark (BENCHMARKS.md): 50,000 requests in about 8.3 s.

    DATABASE_URL=postgres://…/bs_bench .venv/bin/python bench/plugin_overhead.py [--lines 50000]

``--inline N`` measures instead one whole batch of N requests (validation, every chunk on the
fake engine, finalize) run inline in this one process (``Q_SYNC``), with the shipped plugins
disabled and enabled in alternation, ``--runs`` times each: wall and CPU seconds of this
process. The CPU time is the figure to compare on a shared machine (the wall time also holds
PostgreSQL's share and the machine's load); the batch names no plugin, as most batches do.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchserver.settings")


def timed(label: str, n: int, function) -> float:
    started = time.perf_counter()
    function()
    seconds = time.perf_counter() - started
    print(f"{label:<62} {seconds:8.3f} s  {seconds / n * 1e6:8.2f} µs each")
    return seconds


SHIPPED = ("batch-submitter", "quality-rater", "candidate-evaluator")


def inline_batch(n: int, enabled: bool) -> tuple[float, float]:
    """Wall and CPU seconds of one batch of ``n`` requests run inline from creation to its end."""
    from django.core.files.base import ContentFile
    from django.db import transaction

    from batchserver.models import ApiKey
    from bench.orchestration_overhead import input_file
    from jobs.models import Batch
    from jobs.services import batches, files
    from plugins import services

    for plugin_id in SHIPPED:
        services.enable(plugin_id) if enabled else services.disable(plugin_id, "benchmark")
    owner = ApiKey.console_key()
    upload = ContentFile(input_file(n), name="inline.jsonl")
    file = files.create_file(owner, upload, purpose="batch", filename="inline.jsonl")
    wall, cpu = time.perf_counter(), time.process_time()
    with transaction.atomic():  # the validation task runs (inline) when this commits
        batch = batches.create_batch(
            owner, input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    status = Batch.objects.values_list("status", flat=True).get(pk=batch.id)
    assert status == "completed", status
    return wall, cpu


def inline(n: int, runs: int) -> None:
    import statistics

    from models_registry.services import register_model

    register_model("fake-model")
    inline_batch(100, False)  # warm-up (imports, first connection): not counted
    figures: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for run in range(1, runs + 1):
        for enabled in (False, True):
            wall, cpu = inline_batch(n, enabled)
            figures[enabled].append((wall, cpu))
            label = "shipped plugins enabled" if enabled else "no plugin enabled     "
            print(f"run {run}, {label}: {wall:6.2f} s wall, {cpu:6.2f} s CPU", flush=True)
    for enabled in (False, True):
        walls, cpus = zip(*figures[enabled], strict=True)
        label = "enabled " if enabled else "disabled"
        print(
            f"median, plugins {label}: {statistics.median(walls):6.2f} s wall, "
            f"{statistics.median(cpus):6.2f} s CPU"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--inline", type=int, default=0, metavar="N")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n = args.lines
    if args.inline:
        os.environ.setdefault("Q_SYNC", "1")
        os.environ.setdefault("BATCHSERVER_ENGINE", "fake")
        os.environ.setdefault("WORKER_DEFAULT_MODEL", "")

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    if args.inline:
        inline(args.inline, args.runs)
        return
    from plugins import services

    for plugin_id in SHIPPED:
        services.enable(plugin_id)
    key = services.BATCH_METADATA_KEY
    plain = {"team": "research"}
    opted = {key: "candidate-evaluator"}
    body = {
        "model": "m",
        "candidate": {"name": "Ada", "role": "Engineer", "experience": "9 years", "skills": "Py"},
        "job_description": "Backend engineer, Python and PostgreSQL.",
    }
    verdict = '{"score": 8, "strengths": ["Python"], "concerns": [], "recommendation": "yes"}'
    services.schema_plan("warm", opted)  # load the runtime once, as a running process has

    print(f"three plugins enabled; {n:,} lines / answers\n")
    timed(
        "per batch: schema_plan + parser_plan, batch naming no plugin",
        1000,
        lambda: [
            (services.schema_plan("b", plain), services.parser_plan("b", plain))
            for _ in range(1000)
        ],
    )
    assert services.schema_plan("b", plain) is None and services.parser_plan("b", plain) is None
    print(
        f"{'per line, batch naming no plugin':<62} {'0':>8}    (no plan: the loop is not entered)"
    )
    plan = services.schema_plan("b", opted)
    timed(
        "per line: candidate-evaluator schema hook (guarded)",
        n,
        lambda: [plan.transform(body, custom_id=f"c{i}", line=i) for i in range(n)],
    )
    answers = services.parser_plan("b", opted)
    timed(
        "per answer: candidate-evaluator parser (guarded)",
        n,
        lambda: [answers.parse(verdict) for _ in range(n)],
    )
    timed(
        "per answer: rate() (quality-rater rules, guarded)",
        n,
        lambda: [services.rate("Paris is the capital of France.") for _ in range(n)],
    )
    for plugin_id in SHIPPED:
        services.disable(plugin_id)


if __name__ == "__main__":
    main()
