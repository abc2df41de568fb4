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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=50_000)
    n = parser.parse_args().lines

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from plugins import services

    for plugin_id in ("batch-submitter", "quality-rater", "candidate-evaluator"):
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
    for plugin_id in ("batch-submitter", "quality-rater", "candidate-evaluator"):
        services.disable(plugin_id)


if __name__ == "__main__":
    main()
