"""The console's own pages: hub, dashboard, settings, config, logs; and /health for balancers.

Pages are staff only (``urls.py`` wraps them in ``admin.site.admin_view``), drawn in the console
frame (``batchserver.console.render_page``); live parts refresh with htmx. Controls are POST
forms (CSRF) that call a service and come back with a message.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.http import require_POST

from batchserver import charts, console, live
from batchserver.errors import DomainError
from batchserver.models import AuditEntry, LogLine
from batchserver.operations import config, health, samples
from jobs import selectors

LOG_LINES = 100
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _live(request: HttpRequest, page: str, partial: str, title: str, ctx: dict) -> HttpResponse:
    """The whole page, or only its live part when htmx polls it."""
    if request.headers.get("HX-Request") == "true":
        response = render(request, partial, ctx)
    else:
        response = console.render_page(request, page, title, ctx)
    patch_vary_headers(response, ["HX-Request"])
    add_never_cache_headers(response)
    return response


# --- health --------------------------------------------------------------------------------


def health_view(request: HttpRequest) -> JsonResponse:
    """200 when the database, the broker and the workers are fine, else 503 (load balancers)."""
    found = health.check()
    response = JsonResponse(found.as_dict(), status=200 if found.healthy else 503)
    add_never_cache_headers(response)
    return response


# --- hub -----------------------------------------------------------------------------------


def hub(request: HttpRequest) -> HttpResponse:
    """What the server is, its live status, links to every page, the SDK snippet."""
    ctx = {
        "health": health.check(),
        "totals": selectors.totals(),
        "sections": console.sections(),
        "base_url": request.build_absolute_uri("/v1"),
        "audit": list(AuditEntry.objects.all()[:10]),
        "now": timezone.now(),
    }
    return _live(request, "operations/hub.html", "operations/_hub_status.html", "Hub", ctx)


# --- dashboard -----------------------------------------------------------------------------

WINDOWS = {"1": 1.0, "6": 6.0, "24": 24.0, "168": 168.0}
MAX_POINTS = 60  # per chart, whatever the window: a week costs what an hour does


def _chart(
    series: dict[str, list],
    title: str,
    unit: str,
    chart_id: str,
    empty: str = "no sample yet (one is taken every minute)",
):
    if not any(series.values()):
        return charts.format_html(
            '<p class="ops-empty" id="{}">{}: {}.</p>', chart_id, title, empty
        )
    return charts.multi_line_chart(series, title=title, unit=unit, chart_id=chart_id)


def dashboard(request: HttpRequest) -> HttpResponse:
    """Charts over time: queue, throughput, errors, durations, workers, GPUs, engine loads."""
    hours = WINDOWS.get(request.GET.get("hours", "1"), 1.0)
    found = samples.window(hours, MAX_POINTS)
    rates = samples.rates(found)
    durations = selectors.recent_durations()
    gpu = {
        key: _chart(
            {
                name: [(at, value / scale) for at, value in points]
                for name, points in samples.gpu_series(found, key).items()
            },
            title,
            unit,
            f"chart-gpu-{key}",
        )
        for key, title, unit, scale in (
            ("utilization_percent", "GPU utilisation", "%", 1),
            ("memory_used_bytes", "GPU memory in use", "GiB", 2**30),
            ("temperature_celsius", "GPU temperature", "°C", 1),
        )
    }
    ctx = {
        "hours": request.GET.get("hours", "1"),
        "windows": WINDOWS,
        "latest": found[-1] if found else None,
        "charts": [
            _chart(
                {
                    "queued": [(s.at, s.queued_batches) for s in found],
                    "running": [(s.at, s.running_batches) for s in found],
                },
                "Queue depth (batches)",
                "batches",
                "chart-queue",
            ),
            _chart(
                {"requests/s": [(r.at, r.requests_per_second) for r in rates]},
                "Requests per second",
                "requests/s",
                "chart-requests",
            ),
            _chart(
                {"tokens/s": [(r.at, r.tokens_per_second) for r in rates]},
                "Output tokens per second",
                "tokens/s",
                "chart-tokens",
            ),
            _chart(
                {"error rate %": [(r.at, 100 * r.error_rate) for r in rates]},
                "Error rate (failed / answered)",
                "%",
                "chart-errors",
            ),
            _chart(
                {"seconds": [(at, s) for at, s, _ in reversed(durations)]},
                "Batch durations (creation to end)",
                "s",
                "chart-durations",
                "no finished batch yet",
            ),
            _chart(
                {"workers": [(s.at, s.workers_alive) for s in found]},
                "Workers alive",
                "workers",
                "chart-workers",
            ),
            _chart(
                {"loads": [(s.at, s.engine_loads) for s in found]},
                "Engine loads and swaps (per minute)",
                "loads",
                "chart-loads",
            ),
            *gpu.values(),
        ],
    }
    response = console.render_page(request, "operations/dashboard.html", "Dashboard", ctx)
    add_never_cache_headers(response)
    return response


def metrics_for_browsers(view):
    """/metrics stays Prometheus text; a browser asking for HTML gets a link to the dashboard."""

    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        accept = request.headers.get("Accept", "")
        if "text/html" not in accept:
            return view(request, *args, **kwargs)
        text = view(request, *args, **kwargs).content.decode()
        return render(request, "operations/metrics.html", {"text": text})

    return wrapped


# --- settings and config -------------------------------------------------------------------


def settings_page(request: HttpRequest) -> HttpResponse:
    """The settings safe to change while running: value, where it came from, a form each."""
    # What is stored now, not this process's copy: the change may have been saved by another
    # web process (the redirect after a save need not come back to the same one).
    live.forget()
    rows = [
        {
            "editable": e,
            "value": _as_text(live.get(e.name)),
            "source": config.source(e.name)[0],
        }
        for e in live.EDITABLE
    ]
    ctx = {
        "rows": rows,
        "ttl": live.settings.LIVE_SETTINGS_SECONDS,
        "changes": list(AuditEntry.objects.filter(action__startswith="setting.")[:20]),
    }
    return console.render_page(request, "operations/settings.html", "Settings", ctx)


def _as_text(value) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)


@require_POST
def change_setting(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("name", "")
    try:
        if "reset" in request.POST:
            live.reset(name, request.user)
            messages.success(request, f"{name} is back to its value from the environment.")
        else:
            value = live.change(name, request.POST.get("value", ""), request.user)
            messages.success(request, f"{name} is now {_as_text(value)}.")
    except DomainError as exc:
        messages.error(request, f"{exc.message} The old value is kept.")
    return HttpResponseRedirect("/settings")


def config_page(request: HttpRequest) -> HttpResponse:
    """Every setting with its value (secrets masked) and source; versions; GPUs."""
    live.forget()  # as on /settings: the stored values now
    ctx = {
        "rows": config.rows(),
        "versions": config.versions(),
        "gpus": selectors.totals()["gpus"],
    }
    return console.render_page(request, "operations/config.html", "Config", ctx)


# --- logs ----------------------------------------------------------------------------------


class LogFilter(forms.Form):
    level = forms.ChoiceField(required=False, choices=[("", "any")] + [(x, x) for x in LOG_LEVELS])
    process = forms.ChoiceField(
        required=False,
        choices=[
            ("", "any"),
            ("web", "web"),
            ("worker", "worker"),
            ("engine", "engine"),
            ("command", "command"),
        ],
    )
    batch = forms.CharField(required=False, max_length=64, label="Batch id")
    correlation_id = forms.CharField(required=False, max_length=64, label="Correlation id")
    q = forms.CharField(required=False, max_length=200, label="Text")
    follow = forms.BooleanField(required=False, label="Follow live")


def logs(request: HttpRequest) -> HttpResponse:
    """Recent log lines of web and worker, filtered; live when "follow" is ticked."""
    form = LogFilter(request.GET or None)
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    correlation_id = data.get("correlation_id", "")
    note, lines = "", LogLine.objects.all()
    if form.is_bound and not form.is_valid():
        note = " ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())
        lines = LogLine.objects.none()
    if data.get("batch"):
        found = selectors.correlation_of(data["batch"])
        if not found:
            note = f"No batch {data['batch']!r}, or it has no correlation id."
            lines = LogLine.objects.none()
        correlation_id = found or ""
    lines = lines.matching(
        level=data.get("level", ""),
        process=data.get("process", ""),
        correlation_id=correlation_id,
        text=data.get("q", ""),
    )
    ctx = {
        "form": form,
        "lines": list(reversed(lines[:LOG_LINES])),
        "limit": LOG_LINES,
        "note": note,
        "follow": bool(data.get("follow")),
        "query": request.GET.urlencode(),
        "now": timezone.now(),
    }
    return _live(request, "operations/logs.html", "operations/_log_lines.html", "Logs", ctx)
