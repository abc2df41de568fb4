"""Reads of runs for the API, the pages, the command and the exports: one function per question."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from batchserver.errors import NotFound
from benchmarks import scorers as scoring
from benchmarks.models import Dataset, DatasetItem, ModelResult, Run, Sample
from jobs.services.results import get_batch

RESULT_FIGURES = (
    "requests",
    "completed",
    "errors",
    "input_tokens",
    "output_tokens",
    "wall_seconds",
    "requests_per_second",
    "output_tokens_per_second",
    "total_tokens_per_second",
    "latency_p50_ms",
    "latency_p95_ms",
    "gpu_cost",
    "cost_per_million_tokens",
    "cloud_cost",
    "cloud_cost_per_million_tokens",
)


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


@dataclass
class Progress:
    done: int = 0
    total: int = 0
    eta_seconds: float | None = None
    batches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0


def progress(run: Run, now: datetime | None = None) -> Progress:
    """Requests done of the run's planned requests, per batch, and an ETA at the pace so far."""
    now = now or timezone.now()
    size = run.dataset.item_count
    found = Progress()
    for slot in run.batches.all():
        entry = {
            "model": slot.model,
            "repetition": slot.repetition,
            "batch_id": slot.batch_id or None,
            "status": "skipped" if slot.skipped else (slot.batch_status or "pending"),
            "done": 0,
            "total": 0 if slot.skipped else size,
        }
        if slot.batch_id and not slot.batch_status:
            try:
                batch = get_batch(slot.batch_id)
            except NotFound:
                entry["status"] = "deleted"
            else:
                entry["status"] = batch.status
                entry["done"] = batch.request_completed + batch.request_failed
        elif slot.batch_status:
            entry["done"] = size
        found.batches.append(entry)
        found.done += entry["done"]
        found.total += entry["total"]
    if run.is_active and run.started_at and found.done:
        elapsed = (now - run.started_at).total_seconds()
        found.eta_seconds = round(elapsed / found.done * (found.total - found.done), 1)
    return found


def result_data(result: ModelResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": result.model,
        "status": result.status,
        "error": result.error or None,
        **{name: getattr(result, name) for name in RESULT_FIGURES},
        "total_tokens": result.total_tokens,
        "quality": result.quality,
        "hourly_price": None if result.hourly_price is None else float(result.hourly_price),
        "repetitions": result.repetition_figures,
    }
    return data


def run_data(run: Run, with_progress: bool = True) -> dict[str, Any]:
    """A run as the API and the status endpoint answer it."""
    data: dict[str, Any] = {
        "id": run.pk,
        "object": "benchmark.run",
        "name": run.name,
        "status": run.status,
        "dataset": {"id": run.dataset_id, "name": run.dataset.name},
        "models": run.model_names,
        "sampling": run.sampling,
        "repetitions": run.repetitions,
        "scorers": run.scorers,
        "scorer_options": run.scorer_options,
        "gpu_kind": run.gpu_kind or None,
        "cloud_price": run.cloud_price.name if run.cloud_price else None,
        "created_by": run.created_by,
        "created_at": _ts(run.created_at),
        "started_at": _ts(run.started_at),
        "ended_at": _ts(run.ended_at),
        "results": [result_data(r) for r in run.results.all()],
    }
    if with_progress:
        found = progress(run)
        data["progress"] = {
            "done": found.done,
            "total": found.total,
            "percent": found.percent,
            "eta_seconds": found.eta_seconds,
            "batches": found.batches,
        }
    return data


def runs(limit: int = 50, model: str | None = None, status: str | None = None):
    """Recent runs, newest first (optionally those that include ``model`` / have ``status``)."""
    queryset = Run.objects.select_related("dataset", "cloud_price").prefetch_related("results")
    if model:
        queryset = queryset.filter(results__model=model).distinct()
    if status:
        queryset = queryset.filter(status=status)
    return list(queryset[: max(1, min(int(limit), 500))])


def model_history(models: list[str] | None = None, limit: int = 500) -> dict[str, list[tuple]]:
    """Per model: (run end, output tok/s, mean quality, run id) of its computed results, in time."""
    results = ModelResult.objects.filter(
        status=ModelResult.Status.COMPLETED, run__ended_at__isnull=False
    ).select_related("run")
    if models:
        results = results.filter(model__in=models)
    series: dict[str, list[tuple]] = {}
    for result in results.order_by("run__ended_at")[:limit]:
        scores = [v for v in result.quality.values() if v is not None]
        quality = sum(scores) / len(scores) if scores else None
        series.setdefault(result.model, []).append(
            (result.run.ended_at, result.output_tokens_per_second, quality, result.run_id)
        )
    return series


def history_data(limit: int = 50, model: str | None = None) -> dict[str, Any]:
    """``GET /admin/workbench/benchmark-history``: runs with their results, and per-model series."""
    found = runs(limit=limit, model=model)
    return {
        "object": "list",
        "data": [run_data(r, with_progress=False) for r in found],
        "models": {
            name: [
                {"ended_at": _ts(when), "output_tokens_per_second": tps, "quality": q, "run": rid}
                for when, tps, q, rid in points
            ]
            for name, points in model_history([model] if model else None).items()
        },
    }


@dataclass
class Column:
    """One (run, model) column of the comparison."""

    result: ModelResult

    @property
    def label(self) -> str:
        return f"{self.result.model} (run {self.result.run_id})"


@dataclass
class Comparison:
    runs: list[Run]
    columns: list[Column]
    dataset: Dataset | None
    scorers: list[str]
    rows: list[dict[str, Any]]
    excluded: list[Run]  # runs on another dataset: in the summary, not in the matrix


def comparison(run_ids: list[int], max_rows: int | None = None) -> Comparison:
    """Runs side by side: a column per (run, model), a row per prompt of the first run's dataset.

    The matrix holds identical samples only: runs on another dataset are left out of it (they
    still appear in the summary). Each cell is the first repetition's answer and scores.
    """
    found = list(
        Run.objects.filter(pk__in=run_ids)
        .select_related("dataset", "cloud_price")
        .prefetch_related("results")
        .order_by("created_at", "pk")
    )
    dataset = found[0].dataset if found else None
    same = [r for r in found if r.dataset_id == getattr(dataset, "pk", None)]
    columns = [Column(res) for run in same for res in run.results.all()]
    names = list(dict.fromkeys(n for run in same for n in run.scorers))
    rows: list[dict[str, Any]] = []
    if dataset is not None:
        items = list(DatasetItem.objects.filter(dataset=dataset).order_by("index")[:max_rows])
        samples = Sample.objects.filter(
            result__in=[c.result for c in columns], item__in=items, repetition=1
        )
        cells = {(s.result_id, s.item_id): s for s in samples}
        for item in items:
            rows.append(
                {
                    "item": item,
                    "cells": [cells.get((c.result.pk, item.pk)) for c in columns],
                }
            )
    return Comparison(found, columns, dataset, names, rows, [r for r in found if r not in same])


def comparison_records(found: Comparison) -> dict[str, Any]:
    """The matrix as plain data, for the JSON export and the API."""
    return {
        "runs": [run_data(r, with_progress=False) for r in found.runs],
        "dataset": found.dataset.name if found.dataset else None,
        "columns": [
            {"run": c.result.run_id, "model": c.result.model, "label": c.label}
            for c in found.columns
        ],
        "rows": [
            {
                "id": row["item"].item_id,
                "prompt": row["item"].prompt_text(),
                "messages": row["item"].messages,
                "reference": row["item"].reference,
                "tags": row["item"].tags,
                "cells": [_cell(c, s) for c, s in zip(found.columns, row["cells"], strict=True)],
            }
            for row in found.rows
        ],
    }


def _cell(column: Column, sample: Sample | None) -> dict[str, Any]:
    if sample is None:
        return {"label": column.label, "answer": None, "error": column.result.error or "no answer"}
    return {
        "label": column.label,
        "answer": sample.answer,
        "error": sample.error or None,
        "scores": sample.scores,
        "latency_ms": sample.latency_ms,
        "output_tokens": sample.output_tokens,
    }


def scorer_labels(names: list[str]) -> dict[str, str]:
    known = scoring.all_scorers()
    return {n: known[n].label if n in known else n for n in names}
