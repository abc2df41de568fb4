"""The benchmark pages: ``/benchmark-runner`` (start and follow runs) and ``/model-comparison``.

Forms post to the page itself and redirect (post/redirect/get); a refused value shows the
service's message beside the form. The runs table refreshes itself with htmx while a run is
active (``HX-Request``: only that part is rendered).
"""

from __future__ import annotations

import csv
import json
from typing import Any

from django import forms as django_forms
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.http import require_http_methods

from batchserver import charts
from batchserver.charts import duration_text
from batchserver.console import render_page
from batchserver.errors import DomainError
from benchmarks import selectors, services
from benchmarks.api.views import parse_ids
from benchmarks.datasets import InvalidDataset
from benchmarks.models import CloudPrice, GpuPrice, Run
from benchmarks.pages import forms
from benchmarks.pages.tables import comparison_context

REFRESH = "every 2s"


def _no_cache(response: HttpResponse) -> HttpResponse:
    patch_vary_headers(response, ["HX-Request"])
    add_never_cache_headers(response)
    return response


def runs_context() -> dict[str, Any]:
    """The live part of the runner page: recent runs with progress and ETA."""
    rows = []
    for run in selectors.runs(limit=20):
        found = selectors.progress(run)
        rows.append(
            {
                "run": run,
                "progress": found,
                "bar": charts.progress_bar(
                    found.percent, f"{found.done}/{found.total} ({found.percent}%)"
                ),
                "eta": duration_text(found.eta_seconds) if found.eta_seconds is not None else "",
            }
        )
    active = any(r["run"].is_active for r in rows)
    return {"rows": rows, "refresh": REFRESH if active else "", "now": timezone.now()}


def _handle_runner_post(request: HttpRequest) -> tuple[dict[str, Any], int | None]:
    """Do what the posted form asks; returns bound forms with errors, and a run to follow."""
    action = request.POST.get("action")
    if action == "start":
        form = forms.RunForm(request.POST)
        if form.is_valid():
            data = dict(form.cleaned_data)
            dataset = services.get_dataset(data.pop("dataset"))
            models = data.pop("models")
            run = services.start_run(
                dataset, models, created_by=request.user.get_username(), **data
            )
            messages.success(request, f"Benchmark run {run.pk} started.")
            return {}, run.pk
        return {"run_form": form}, None
    if action == "cancel":
        run = services.cancel_run(services.get_run(request.POST.get("run_id")))
        messages.success(request, f"Benchmark run {run.pk} is being cancelled.")
        return {}, None
    if action == "upload":
        form = forms.UploadForm(request.POST, request.FILES)
        if form.is_valid():
            dataset = services.create_dataset_from_upload(
                form.cleaned_data["name"], form.cleaned_data["file"]
            )
            messages.success(request, f"Dataset '{dataset.name}': {dataset.item_count} prompts.")
            return {}, None
        return {"upload_form": form}, None
    if action == "from_file":
        form = forms.FromFileForm(request.POST)
        if form.is_valid():
            dataset = services.create_dataset_from_file(
                form.cleaned_data["file_id"].strip(), form.cleaned_data["name"]
            )
            messages.success(request, f"Dataset '{dataset.name}': {dataset.item_count} prompts.")
            return {}, None
        return {"file_form": form}, None
    messages.error(request, "Unknown action.")
    return {}, None


@staff_member_required
@require_http_methods(["GET", "POST"])
def runner(request: HttpRequest) -> HttpResponse:
    """Start runs, upload datasets, follow every recent run live."""
    if request.headers.get("HX-Request") == "true" and request.method == "GET":
        return _no_cache(render(request, "benchmarks/_runs.html", runs_context()))
    bound: dict[str, Any] = {}
    problem = None
    if request.method == "POST":
        try:
            bound, run_id = _handle_runner_post(request)
        except DomainError as exc:
            problem = exc
            bound = {"failed_action": request.POST.get("action")}
        if not bound and problem is None:
            return redirect(f"{request.path}?run={run_id}" if run_id else request.path)
    services.ensure_builtin_datasets()
    context = {
        "run_form": bound.get("run_form")
        or (
            forms.RunForm(request.POST)
            if bound.get("failed_action") == "start"
            else forms.RunForm(initial=_preselected(request))
        ),
        "upload_form": bound.get("upload_form") or forms.UploadForm(),
        "file_form": bound.get("file_form") or forms.FromFileForm(),
        "problem": problem,
        "problem_action": bound.get("failed_action"),
        "line_errors": problem.line_errors if isinstance(problem, InvalidDataset) else [],
        "followed": request.GET.get("run"),
        **runs_context(),
    }
    response = render_page(request, "benchmarks/runner.html", "Benchmarks", context)
    # A form handed back is one whose input was refused (e.g. a model that is not offered).
    refused_form = any(isinstance(f, django_forms.BaseForm) for f in bound.values())
    if problem is not None or refused_form:
        response.status_code = 400
    return _no_cache(response)


def _preselected(request: HttpRequest) -> dict[str, Any]:
    """What a link asks the run form to show chosen: ``?models=a,b`` (or ``models`` repeated,
    e.g. a fine-tuned model and its base) and ``?dataset=<id or name>``."""
    initial: dict[str, Any] = {}
    models = [m.strip() for value in request.GET.getlist("models") for m in value.split(",")]
    if any(models):
        initial["models"] = list(dict.fromkeys(m for m in models if m))
    if request.GET.get("dataset"):
        try:
            initial["dataset"] = services.get_dataset(request.GET["dataset"]).pk
        except DomainError:
            pass  # an unknown dataset in a link: the form keeps its default
    return initial


def _selected_runs(request: HttpRequest) -> list[int]:
    ids: list[int] = []
    for value in request.GET.getlist("runs"):
        ids += parse_ids(value)
    if not ids:
        latest = Run.objects.filter(results__computed_at__isnull=False).first()
        ids = [latest.pk] if latest else []
    return list(dict.fromkeys(ids))


def _handle_price_post(request: HttpRequest) -> DomainError | None:
    try:
        if request.POST.get("action") == "gpu_price":
            row = services.set_gpu_price(
                request.POST.get("kind", ""), request.POST.get("hourly_price")
            )
            messages.success(request, f"GPU price set: {row}.")
        else:
            services.set_cloud_price(
                request.POST.get("name", ""),
                request.POST.get("input_per_million"),
                request.POST.get("output_per_million"),
            )
            messages.success(request, "Cloud price set.")
    except DomainError as exc:
        return exc
    return None


@staff_member_required
@require_http_methods(["GET", "POST"])
def comparison(request: HttpRequest) -> HttpResponse:
    """Runs side by side: summary, charts, the matrix of identical samples, history, prices."""
    problem = None
    if request.method == "POST":
        problem = _handle_price_post(request)
        if problem is None:
            return redirect(request.get_full_path())
    try:
        ids = _selected_runs(request)
    except DomainError as exc:
        problem, ids = exc, []
    context = {
        **comparison_context(ids),
        "recent": selectors.runs(limit=30),
        "selected": ids,
        "gpu_prices": GpuPrice.objects.all(),
        "cloud_prices": CloudPrice.objects.all(),
        "gpu_form": forms.GpuPriceForm(request.POST if problem else None),
        "cloud_form": forms.CloudPriceForm(),
        "problem": problem,
        "query": "&".join(f"runs={i}" for i in ids),
    }
    response = render_page(request, "benchmarks/comparison.html", "Model comparison", context)
    if problem is not None:
        response.status_code = 400
    return _no_cache(response)


@staff_member_required
def export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The matrix of the selected runs as CSV (one row per prompt) or JSON."""
    if fmt not in ("csv", "json"):
        raise Http404("export formats: csv, json")
    found = selectors.comparison(_selected_runs(request))
    records = selectors.comparison_records(found)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    if fmt == "json":
        response = JsonResponse(records, json_dumps_params={"ensure_ascii": False, "indent": 1})
    else:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        _write_csv(response, records, found.scorers)
    name = f"benchmark-comparison-{stamp}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _write_csv(out, records: dict[str, Any], scorers: list[str]) -> None:
    writer = csv.writer(out)
    header = ["id", "prompt", "reference", "tags"]
    for column in records["columns"]:
        label = column["label"]
        header += [f"{label} answer", f"{label} error", f"{label} latency_ms"]
        header += [f"{label} {name}" for name in scorers]
    writer.writerow(header)
    for row in records["rows"]:
        line = [row["id"], row["prompt"], row["reference"] or "", json.dumps(row["tags"])]
        for cell in row["cells"]:
            scores = cell.get("scores") or {}
            line += [cell.get("answer") or "", cell.get("error") or "", cell.get("latency_ms")]
            line += ["" if scores.get(n) is None else scores[n] for n in scorers]
        writer.writerow(line)
