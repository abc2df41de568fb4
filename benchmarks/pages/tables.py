"""What the comparison page shows, built from ``benchmarks.selectors``: tables and charts."""

from __future__ import annotations

from typing import Any

from batchserver import charts
from benchmarks import selectors

MATRIX_ROWS_ON_PAGE = 200


def _cell_view(sample, scorers: list[str]) -> dict[str, Any]:
    if sample is None:
        return {"missing": True}
    scores = [(name, sample.scores.get(name)) for name in scorers if name in sample.scores]
    known = [v for _, v in scores if v is not None]
    verdict = ""
    if sample.error:
        verdict = "bench-fail"
    elif known:
        verdict = "bench-pass" if max(known) >= 1.0 else "bench-fail" if max(known) == 0 else ""
    return {"sample": sample, "scores": scores, "verdict": verdict}


def _charts(found: selectors.Comparison, labels: dict[str, str]) -> dict[str, Any]:
    columns = found.columns
    models = list(dict.fromkeys(r.model for run in found.runs for r in run.results.all()))
    history = selectors.model_history(models)
    return {
        "throughput_chart": charts.grouped_bar_chart(
            [c.label for c in columns],
            [("output tok/s", [c.result.output_tokens_per_second for c in columns])],
            title="Output tokens per second",
            unit="tokens/s",
            chart_id="chart-throughput",
        ),
        "quality_chart": charts.grouped_bar_chart(
            [labels[n] for n in found.scorers],
            [(c.label, [c.result.quality.get(n) for n in found.scorers]) for c in columns],
            title="Quality per scorer (mean score)",
            unit="0–1",
            chart_id="chart-quality",
            top=1.0,
        ),
        "history_chart": charts.multi_line_chart(
            {m: [(w, t) for w, t, _, _ in pts if t is not None] for m, pts in history.items()},
            title="Output tokens per second over runs",
            unit="tokens/s",
            chart_id="chart-history",
        ),
        "quality_history_chart": charts.multi_line_chart(
            {m: [(w, q) for w, _, q, _ in pts if q is not None] for m, pts in history.items()},
            title="Mean quality over runs",
            unit="0–1",
            chart_id="chart-quality-history",
        ),
    }


def comparison_context(run_ids: list[int]) -> dict[str, Any]:
    """Summary per column, throughput and quality charts, the matrix, history per model."""
    found = selectors.comparison(run_ids, max_rows=MATRIX_ROWS_ON_PAGE)
    labels = selectors.scorer_labels(found.scorers)
    rows = [
        {"item": row["item"], "cells": [_cell_view(s, found.scorers) for s in row["cells"]]}
        for row in found.rows
    ]
    return {
        "comparison": found,
        "scorer_names": found.scorers,
        "scorer_labels": [labels[n] for n in found.scorers],
        "summary": [
            {"column": c, "quality": [c.result.quality.get(n) for n in found.scorers]}
            for c in found.columns
        ],
        "matrix": rows,
        "matrix_truncated": bool(found.dataset) and found.dataset.item_count > MATRIX_ROWS_ON_PAGE,
        **_charts(found, labels),
    }
