"""Operator pages of the batch side: queue, history, workers, one batch, and their controls.

Each page renders whole, or, when htmx polls it (``HX-Request``), only its live part. Staff only:
``urls.py`` wraps every view in ``admin.site.admin_view``. Controls are POST forms (CSRF) that
call a service and come back with a message.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.http import require_POST

from batchserver import audit, charts
from batchserver.errors import DomainError, Invalid
from jobs import selectors, webhooks
from jobs.models import Batch, WebhookDelivery
from jobs.services import batches as batch_services
from jobs.services import scheduling
from jobs.services.recovery import reset_stuck_jobs
from jobs.worker.control import request_worker_restart

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
    """Queued and running work in the order workers take it, refreshed every few seconds."""
    context = {"rows": selectors.queue_rows(), "now": timezone.now(), "refresh": REFRESH}
    return _render(request, "jobs/queue.html", "jobs/_queue.html", "Queue", context)


def workers(request: HttpRequest) -> HttpResponse:
    """Every worker's heartbeat, state, loaded model, current work and throughput."""
    context = {"rows": selectors.worker_rows(), "now": timezone.now(), "refresh": REFRESH}
    return _render(request, "jobs/workers.html", "jobs/_workers.html", "Workers", context)


def batch(request: HttpRequest, batch_id: str) -> HttpResponse:
    """One batch: progress, ETA, counts, errors, its files and its admin page."""
    found = get_object_or_404(Batch, pk=batch_id)
    row = next((r for r in selectors.queue_rows() if r.item.id == found.pk), None)
    percent = 100 if found.status == Batch.Status.COMPLETED else 0
    if found.request_total and percent < 100:
        percent = int(100 * found.done / found.request_total)
    label = f"{found.done}/{found.request_total} ({percent}%)"
    context = {
        "batch": found,
        "row": row,
        "done": found.done,
        "progress": charts.progress_bar(percent, label),
        "refresh": REFRESH if not found.is_terminal else "",
        "files": [
            ("input", found.input_file_id),
            ("output", found.output_file_id),
            ("error", found.error_file_id),
        ],
        "schedulable": found.status in Batch.SCHEDULABLE,
        **selectors.batch_detail(found),
    }
    title = f"Batch {found.id}"
    return _render(request, "jobs/batch.html", "jobs/_batch.html", title, context)


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
        self.fields["model"].choices = [("", "any")] + [(m, m) for m in selectors.known_models()]


def history(request: HttpRequest) -> HttpResponse:
    """Finished batches with filters, and their throughput over time as two charts."""
    form = HistoryFilter(request.GET or None)
    query: dict = {"statuses": list(Batch.TERMINAL)}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        query["statuses"] = [data["status"]] if data["status"] else query["statuses"]
        query["model"] = data["model"]
        query["created_after"] = _day_start(data["created_from"])
        query["created_before"] = _day_start(data["created_to"], next_day=True)
    batches = list(selectors.history(**query)[: selectors.HISTORY_LIMIT])
    rows = [(b, selectors.throughput(b)) for b in batches]
    series = sorted(((t, b.pk) for b, t in rows if t is not None), key=lambda p: p[0].ended_at)
    context = {
        "form": form,
        "rows": rows,
        "tokens_chart": charts.time_chart(
            [(t.ended_at, t.output_tokens_per_second, pk) for t, pk in series],
            title="Output tokens per second, per finished batch",
            unit="tokens/s",
            chart_id="chart-tokens",
        ),
        "requests_chart": charts.time_chart(
            [(t.ended_at, t.requests_per_second, pk) for t, pk in series],
            title="Requests per second, per finished batch",
            unit="requests/s",
            chart_id="chart-requests",
        ),
    }
    return _render(request, "jobs/history.html", "jobs/history.html", "Job history", context)


def _day_start(day, next_day: bool = False):
    if day is None:
        return None
    start = datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())
    return start + timedelta(days=1) if next_day else start


# --- controls (POST forms) -----------------------------------------------------------------


def _back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    target = request.POST.get("next", "")
    return HttpResponseRedirect(target if target.startswith("/") else fallback)


@require_POST
def restart_worker(request: HttpRequest) -> HttpResponse:
    """Ask a worker (or every live one) to restart its engine between units."""
    worker_id = request.POST.get("worker_id", "").strip()
    asked = request_worker_restart([worker_id] if worker_id else None)
    audit.record(request.user, "worker.restart", worker_id or "all", ", ".join(asked), bool(asked))
    if asked:
        messages.success(request, f"Engine restart requested for {', '.join(asked)}.")
    else:
        messages.warning(request, "No live worker to restart.")
    return _back(request, "/workers")


@require_POST
def reset_stuck(request: HttpRequest) -> HttpResponse:
    """Requeue work whose worker is gone and settle batches nothing is carrying."""
    report = reset_stuck_jobs()
    audit.record(request.user, "work.reset_stuck", "", report.summary())
    messages.success(request, f"Reset stuck work: {report.summary()}")
    return _back(request, "/workers")


BATCH_ACTIONS = {
    "pause": scheduling.pause_batch,
    "resume": scheduling.resume_batch,
    "cancel": batch_services.request_cancel,
}


@require_POST
def batch_action(request: HttpRequest, batch_id: str) -> HttpResponse:
    """Pause, resume, cancel or re-prioritise any key's batch from its page."""
    found = get_object_or_404(Batch, pk=batch_id)
    action = request.POST.get("action", "")
    try:
        if action == "priority":
            try:
                priority = int(request.POST.get("priority", ""))
            except ValueError:
                raise Invalid("priority must be a whole number.") from None
            scheduling.set_priority(found, priority)
        elif action in BATCH_ACTIONS:
            BATCH_ACTIONS[action](found)
        else:
            raise Invalid(f"Unknown action {action!r}.")
    except DomainError as exc:
        audit.record(request.user, f"batch.{action[:30]}", batch_id, exc.message, ok=False)
        messages.error(request, exc.message)
    else:
        detail = f"priority {found.priority}" if action == "priority" else ""
        audit.record(request.user, f"batch.{action}", batch_id, detail)
        messages.success(request, f"{batch_id}: {action} done.")
    return _back(request, f"/batches/{batch_id}")


@require_POST
def replay_webhook(request: HttpRequest, delivery_id: str) -> HttpResponse:
    """Send a dead (or delivered) webhook message again, with the same webhook-id."""
    delivery = get_object_or_404(WebhookDelivery.objects.select_related("batch"), pk=delivery_id)
    try:
        webhooks.replay(delivery)
    except DomainError as exc:
        audit.record(request.user, "webhook.replay", delivery_id, exc.message, ok=False)
        messages.error(request, exc.message)
    else:
        audit.record(request.user, "webhook.replay", delivery_id, f"batch {delivery.batch_id}")
        messages.success(request, f"Webhook {delivery_id} is being sent again.")
    return _back(request, f"/batches/{delivery.batch_id}")
