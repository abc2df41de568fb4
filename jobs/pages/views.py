"""Operator pages in the admin's look: queue, history, workers, one batch.

Each view renders the whole page, or, when htmx polls it (``HX-Request``), only its live part.
Staff-only: ``urls.py`` wraps every view in ``admin.site.admin_view``.
"""

from __future__ import annotations

from datetime import date

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_vary_headers

from batchserver import charts
from jobs.models import Batch
from jobs.pages import data

REFRESH = "every 3s"


def _render(
    request: HttpRequest, page: str, partial: str, title: str, context: dict
) -> HttpResponse:
    if request.headers.get("HX-Request") == "true":
        response = render(request, partial, context)
    else:
        context = {**admin.site.each_context(request), "title": title, **context}
        response = render(request, page, context)
    patch_vary_headers(response, ["HX-Request"])
    add_never_cache_headers(response)
    return response


def queue(request: HttpRequest) -> HttpResponse:
    """Queued and running batches in the order workers take them, refreshed every few seconds."""
    context = {"rows": data.queue(), "now": timezone.now(), "refresh": REFRESH}
    return _render(request, "ops/queue.html", "ops/_queue.html", "Queue", context)


def workers(request: HttpRequest) -> HttpResponse:
    """Every worker's heartbeat, state, loaded model, current batch and throughput."""
    context = {"rows": data.workers(), "now": timezone.now(), "refresh": REFRESH}
    return _render(request, "ops/workers.html", "ops/_workers.html", "Workers", context)


def batch(request: HttpRequest, batch_id: str) -> HttpResponse:
    """One batch: progress, ETA, counts, errors, its files and its admin page."""
    found = get_object_or_404(Batch, pk=batch_id)
    row = data.queue_row(found) if found.status in data.QUEUED else None
    done = data.done_of(found)
    percent = int(100 * done / found.request_total) if found.request_total else 0
    if found.status == Batch.Status.COMPLETED:
        percent = 100
    context = {
        "batch": found,
        "row": row,
        "done": done,
        "progress": charts.progress_bar(percent, f"{done}/{found.request_total} ({percent}%)"),
        "refresh": REFRESH if not found.is_terminal else "",
        "files": [
            ("input", found.input_file_id),
            ("output", found.output_file_id),
            ("error", found.error_file_id),
        ],
        **data.batch_detail(found),
    }
    title = f"Batch {found.id}"
    return _render(request, "ops/batch.html", "ops/_batch.html", title, context)


class HistoryFilter(forms.Form):
    status = forms.ChoiceField(required=False)
    model = forms.ChoiceField(required=False)
    created_from = forms.DateField(
        required=False, label="Created from", widget=forms.DateInput(attrs={"type": "date"})
    )
    created_to = forms.DateField(
        required=False, label="to", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", "any")] + [(s, s) for s in Batch.TERMINAL]
        self.fields["model"].choices = [("", "any")] + [(m, m) for m in data.known_models()]


def history(request: HttpRequest) -> HttpResponse:
    """Finished batches with filters, and their throughput over time as two charts."""
    form = HistoryFilter(request.GET or None)
    filters: dict[str, str | date | None] = {}
    if form.is_bound and form.is_valid():
        filters = {k: v for k, v in form.cleaned_data.items() if v}
    batches = data.history(**filters)  # type: ignore[arg-type]
    series = data.throughput_series(batches)
    measured = {t.batch.pk: t for t in series}
    context = {
        "form": form,
        "rows": [(b, measured.get(b.pk)) for b in batches],
        "tokens_chart": charts.time_chart(
            [(t.ended_at, t.tokens_per_second, t.batch.pk) for t in series],
            title="Output tokens per second, per finished batch",
            unit="tokens/s",
            chart_id="chart-tokens",
        ),
        "requests_chart": charts.time_chart(
            [(t.ended_at, t.requests_per_second, t.batch.pk) for t in series],
            title="Requests per second, per finished batch",
            unit="requests/s",
            chart_id="chart-requests",
        ),
    }
    return _render(request, "ops/history.html", "ops/history.html", "Job history", context)
