"""Figures of one model of a run, computed once its batches have ended.

Read through ``jobs.services.results`` only: each batch's counts, tokens and timestamps
(``get_batch``), and its rows (``iter_results``) for latency, answers and errors.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from batchserver.errors import NotFound
from benchmarks import figures
from benchmarks import scorers as scoring
from benchmarks.models import ModelResult, RunBatch, Sample
from benchmarks.services.prices import apply_cost
from jobs.services.results import ResultRow, answer_text, get_batch, iter_results


def ended_at(batch) -> Any:
    return batch.completed_at or batch.failed_at or batch.cancelled_at or batch.expired_at


def wall_seconds(batch) -> float | None:
    """From the batch's creation to its end: the clock of engine_efficiency.py's server figure."""
    end = ended_at(batch)
    return (end - batch.created_at).total_seconds() if end else None


def row_error(row: ResultRow) -> str:
    """A failed row's message: its error, or the error the engine answered."""
    if row.error:
        return str(row.error.get("message") or row.error)
    try:
        body = json.loads(row.response_body) if row.response_body else {}
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or "error")
    return row.status


def batch_error(batch) -> str:
    """Why a batch failed as a whole (e.g. its model could not be loaded), else ''."""
    errors = batch.errors or []
    if errors and isinstance(errors[0], dict):
        return str(errors[0].get("message") or errors[0].get("code"))
    return (batch.note or "") if batch.status == "failed" else ""


class _Totals:
    def __init__(self) -> None:
        self.requests = self.completed = self.input_tokens = self.output_tokens = 0
        self.seconds = 0.0
        self.latencies: list[float] = []
        self.repetitions: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.row_errors: list[str] = []


def _add_batch(totals: _Totals, slot: RunBatch, samples: list[Sample], items, context) -> None:
    try:
        batch = get_batch(slot.batch_id)
    except NotFound:
        totals.errors.append(f"batch {slot.batch_id} was deleted")
        return
    seconds = wall_seconds(batch)
    totals.requests += batch.request_total
    totals.completed += batch.request_completed
    totals.input_tokens += batch.input_tokens
    totals.output_tokens += batch.output_tokens
    if seconds and batch.request_completed:
        totals.seconds += seconds
    totals.repetitions.append(
        {
            "repetition": slot.repetition,
            "batch_id": batch.id,
            "status": batch.status,
            "wall_seconds": seconds,
            "completed": batch.request_completed,
            "output_tokens": batch.output_tokens,
            "output_tokens_per_second": (
                batch.output_tokens / seconds if seconds and batch.request_completed else None
            ),
        }
    )
    if error := batch_error(batch):
        totals.errors.append(error)
    scorers, options = context
    for row in iter_results(batch.id):
        item = items.get(row.custom_id)
        if item is None:
            continue
        answer = answer_text(row.response_body) if row.status == "completed" else None
        if row.status == "completed" and row.latency_ms is not None:
            totals.latencies.append(row.latency_ms)
        elif row.status != "completed" and len(totals.row_errors) < 3:
            totals.row_errors.append(row_error(row))
        samples.append(
            Sample(
                item=item,
                repetition=slot.repetition,
                answer=answer,
                error="" if row.status == "completed" else row_error(row),
                scores=(
                    scoring.score_answer(
                        scorers, answer or "", item.reference, {**options, "_prompt": _prompt(item)}
                    )
                    if row.status == "completed"
                    else {}
                ),
                latency_ms=row.latency_ms,
                output_tokens=row.output_tokens,
            )
        )


def _prompt(item) -> str:
    """The item's last user message, what a rating plugin judges the answer against."""
    users = [m.get("content") for m in item.messages if m.get("role") == "user"]
    return users[-1] if users and isinstance(users[-1], str) else ""


def _quality(samples: list[Sample], names: list[str]) -> dict[str, float | None]:
    quality: dict[str, float | None] = {}
    # A scorer that answers several scores (the plugin ratings) adds columns of its own.
    names = [n for n in names if n != scoring.PLUGIN_RATINGS]
    names += list(dict.fromkeys(k for s in samples for k in s.scores if k not in names))
    for name in names:
        values = [s.scores[name] for s in samples if s.scores.get(name) is not None]
        quality[name] = round(sum(values) / len(values), 4) if values else None
    return quality


@transaction.atomic
def compute_result(result: ModelResult) -> ModelResult:
    """Store a model's speed, latency, errors, quality, cost and every sample, from its batches."""
    run = result.run
    items = {f"p{item.index}": item for item in run.dataset.items.all()}
    context = (scoring.get_scorers(run.scorers), run.scorer_options or {})
    totals, samples = _Totals(), []
    slots = run.batches.filter(model=result.model).exclude(batch_id="").order_by("position")
    for slot in slots:
        _add_batch(totals, slot, samples, items, context)
    speed = figures.throughput(
        totals.completed, totals.input_tokens, totals.output_tokens, totals.seconds
    )
    result.requests = totals.requests
    result.completed = totals.completed
    result.errors = totals.requests - totals.completed
    result.input_tokens, result.output_tokens = totals.input_tokens, totals.output_tokens
    result.wall_seconds = totals.seconds or None
    result.requests_per_second = speed.requests_per_second
    result.output_tokens_per_second = speed.output_tokens_per_second
    result.total_tokens_per_second = speed.total_tokens_per_second
    result.latency_p50_ms = figures.percentile(totals.latencies, 50)
    result.latency_p95_ms = figures.percentile(totals.latencies, 95)
    result.quality = _quality(samples, run.scorers)
    result.repetition_figures = totals.repetitions
    if not totals.errors and totals.requests and not totals.completed:
        totals.errors = totals.row_errors  # every request failed: say why, from the rows
    result.error = "; ".join(dict.fromkeys(totals.errors))[:2000]
    skipped = run.batches.filter(model=result.model, skipped=True).exists()
    incomplete = skipped or any(r["status"] != "completed" for r in totals.repetitions)
    result.status = _status(result, cancelled=run.status == run.Status.CANCELLING and incomplete)
    result.computed_at = timezone.now()
    apply_cost(result)
    result.save()
    result.samples.all().delete()  # a recompute replaces them
    for sample in samples:
        sample.result = result
    Sample.objects.bulk_create(samples, batch_size=1000)
    return result


def _status(result: ModelResult, cancelled: bool) -> str:
    """Failed: a batch of the model failed or was lost (its error says why; what it answered
    before that is kept and scored), or not one answer; cancelled: cut short by a cancel."""
    S = ModelResult.Status
    if result.error:
        return S.FAILED
    if cancelled:
        return S.CANCELLED
    return S.COMPLETED if result.completed else S.FAILED
