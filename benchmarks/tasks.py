"""django-q2 entry points of benchmark runs: they take ids and re-read the rows."""

from __future__ import annotations

from benchmarks.models import Run
from benchmarks.services import runs


def advance_run(run_id: int) -> str:
    """Move one run on (a batch of it ended); does nothing if nothing changed."""
    run = runs.advance_run(run_id)
    return f"run {run_id}: {run.status if run else 'gone'}"


def advance_active_runs() -> int:
    """Periodic safety net: move on every active run, in case a batch's signal was lost."""
    ids = list(Run.objects.active().values_list("pk", flat=True))
    for run_id in ids:
        runs.advance_run(run_id)
    return len(ids)
