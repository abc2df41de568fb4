"""The curation pages (staff only): ``/workbench`` (one record at a time, keyboard shortcuts,
filters, bulk actions on a whole filter), ``/curation`` (datasets, progress, create, merge,
split, de-duplicate, exports) and ``/enhanced-workbench`` (analytics as charts).

Forms post to the page and redirect (post/redirect/get) with a message; a refused value shows
the service's message. Prompts and answers are always escaped by the templates.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_http_methods

from batchserver import charts
from batchserver.console import render_page
from batchserver.errors import DomainError, Invalid
from curation import selectors, services
from curation.diff import word_diff
from curation.filters import RecordFilter
from curation.models import Dataset, Record
from jobs.services.files import get_file, open_file

STATUS_CHOICES = [s.value for s in Record.Status]


def _filter(request: HttpRequest) -> tuple[RecordFilter, str | None]:
    try:
        return RecordFilter.from_params(request.GET), None
    except Invalid as exc:
        return RecordFilter(), exc.message


def _url(path: str, flt: RecordFilter, **extra: Any) -> str:
    params = {**flt.as_params(), **{k: str(v) for k, v in extra.items() if v not in (None, "")}}
    return f"{path}?{urlencode(params)}" if params else path


def _int(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


# --- /workbench ---------------------------------------------------------------------------


def _review_changes(post: Any, record: Record) -> dict[str, Any]:
    """The changes a workbench form asks for (buttons carry one field each)."""
    changes: dict[str, Any] = {}
    if post.get("rating"):
        changes["rating"] = None if post["rating"] == "clear" else _int(post["rating"]) or 0
    if post.get("thumb"):
        changes["thumb"] = {"up": 1, "down": -1}.get(post["thumb"])
    if post.get("status"):
        changes["status"] = post["status"]
    if post.get("gold"):
        changes["gold"] = post["gold"] == "true"
    if "correction" in post:
        text = post["correction"].replace("\r\n", "\n")
        changes["correction"] = None if not text.strip() or text == record.answer else text
    if "note" in post:
        changes["note"] = post["note"]
    if "labels" in post:
        changes["labels"] = [x.strip() for x in post["labels"].split(",") if x.strip()]
    return changes


def _workbench_post(request: HttpRequest, flt: RecordFilter) -> str:
    """Do what the posted form asks; returns where to go next."""
    post = request.POST
    actor = request.user.get_username()
    if post.get("action") == "bulk":
        action = post.get("bulk_action", "")
        if action == "add_to_dataset":
            target = services.get_dataset(post.get("target", ""))
            changed = services.add_selection(target, flt)
            messages.success(request, f"{changed} record(s) added to dataset '{target.name}'.")
        else:
            changed = services.bulk_action(flt, action, actor=actor, value=post.get("value", ""))
            messages.success(request, f"{action}: {changed} record(s) changed.")
        return _url("/workbench", flt)
    record = services.get_record(post.get("record", ""))
    version = _int(post.get("version")) or 0
    try:
        services.review_record(
            record, version=version, actor=actor, changes=_review_changes(post, record)
        )
    except services.StaleRecord as exc:
        messages.error(request, exc.message)
        return _url("/workbench", flt, record=record.pk)
    following = _int(post.get("next"))
    if post.get("status") in ("accepted", "rejected") and following:
        return _url("/workbench", flt, record=following)
    return _url("/workbench", flt, record=record.pk)


def _record_context(record: Record) -> dict[str, Any]:
    return {
        "record": record,
        "diff": word_diff(record.answer, record.correction)
        if record.correction is not None
        else None,
        "judgements": list(record.judgements.order_by("reviewer")),
        "events": list(record.events.order_by("-at", "-id")[:30]),
        "ratings": range(1, 6),
    }


@staff_member_required
@require_http_methods(["GET", "POST"])
def workbench(request: HttpRequest) -> HttpResponse:
    flt, problem = _filter(request)
    if request.method == "POST":
        try:
            return redirect(_workbench_post(request, flt))
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect(_url("/workbench", flt, record=request.POST.get("record")))
    found = selectors.position(flt, _int(request.GET.get("record")))
    context: dict[str, Any] = {
        "flt": flt,
        "problem": problem,
        "position": found,
        "datasets": selectors.datasets(),
        **selectors.filter_choices(),
        "statuses": STATUS_CHOICES,
        "actions": services.ACTIONS,
        "query": urlencode(flt.as_params()),
        "prev_url": _url("/workbench", flt, record=found.previous_id) if found.previous_id else "",
        "next_url": _url("/workbench", flt, record=found.next_id) if found.next_id else "",
    }
    if found.record is not None:
        context.update(_record_context(found.record))
    return render_page(request, "curation/workbench.html", "Workbench", context)


# --- /curation ----------------------------------------------------------------------------


def _result_message(dataset: Dataset) -> Any:
    """What the dataset's last operation made, as the row shows it."""
    found = dataset.task_result or {}
    task = found.get("task")
    if task == "export":
        fields = services.ExportResult.__dataclass_fields__
        return _export_message(services.ExportResult(**{k: found[k] for k in fields}))
    if task == "merge":
        return f"Merged: {found['records']} record(s)."
    if task == "split":
        return f"Split: {found['train']} train, {found['validation']} validation."
    if task == "dedupe":
        return f"De-duplicated: {found['removed']} duplicate(s) removed."
    return ""


def _export_message(result: services.ExportResult) -> Any:
    parts = [
        format_html(
            'Exported {} line(s) to <a href="/curation/files/{}" class="cur-download">{}</a> '
            "(file id <code>{}</code>)",
            result.lines,
            result.file_id,
            result.filename,
            result.file_id,
        )
    ]
    if result.skipped:
        parts.append(format_html("; {} record(s) skipped", result.skipped))
    if result.benchmark_dataset_id:
        parts.append(
            format_html(
                '; benchmark dataset {} made: <a href="/benchmark-runner">run it</a>',
                result.benchmark_dataset_id,
            )
        )
    if result.fine_tuning_url:
        parts.append(
            format_html('; <a href="{}">start a fine-tuning job</a>', result.fine_tuning_url)
        )
    return format_html("{}.", format_html_join("", "{}", ((p,) for p in parts)))


def _curation_post(request: HttpRequest) -> None:
    post, actor = request.POST, request.user.get_username()
    action = post.get("action")
    if action == "from_batches":
        ids = post.get("batch_ids", "").replace(",", " ").split()
        dataset = services.create_dataset_from_batches(post.get("name", ""), ids, created_by=actor)
        messages.success(request, f"Dataset '{dataset.name}' is being imported.")
    elif action == "upload":
        upload = request.FILES.get("file")
        if upload is None:
            raise Invalid("Choose a JSONL file to upload.", param="file")
        dataset = services.create_dataset_from_upload(
            post.get("name", ""), upload, created_by=actor
        )
        messages.success(request, f"Dataset '{dataset.name}' made from {upload.name}.")
    elif action == "from_run":
        dataset = services.create_dataset_from_run(
            post.get("run_id", ""), name=post.get("name", ""), created_by=actor
        )
        messages.success(request, f"Dataset '{dataset.name}' is being imported.")
    elif action == "merge":
        found = [services.get_dataset(i) for i in post.getlist("dataset_ids")]
        merged = services.start_merge(found, post.get("name", ""), created_by=actor)
        messages.success(
            request, f"Dataset '{merged.name}' is being merged from {len(found)} datasets."
        )
    else:
        _dataset_action(request, services.get_dataset(post.get("dataset", "")), action)


def _dataset_action(request: HttpRequest, dataset: Dataset, action: str | None) -> None:
    post = request.POST
    if action == "split":
        try:
            fraction = float(post.get("validation_fraction", "0.1"))
        except ValueError:
            raise Invalid(
                "validation_fraction must be a number.", param="validation_fraction"
            ) from None
        services.start_split(dataset, fraction, _int(post.get("seed")) or 0)
        messages.success(request, f"'{dataset.name}' is being split: progress below.")
    elif action == "dedupe":
        services.start_dedupe(dataset)
        messages.success(request, f"'{dataset.name}' is being de-duplicated: progress below.")
    elif action == "score":
        services.start_scoring(dataset)
        messages.success(request, f"'{dataset.name}' is being scored by the rating plugins.")
    elif action == "export":
        services.start_export(
            dataset,
            post.get("format", ""),
            only=post.get("only") or None,
            split=post.get("split", ""),
            k=_int(post.get("k")) or 3,
            benchmark_name=post.get("benchmark_name", "").strip(),
        )
        messages.success(request, f"'{dataset.name}' is being exported: progress below.")
    elif action == "delete":
        services.delete_dataset(dataset)
        messages.success(request, f"Dataset '{dataset.name}' deleted.")
    else:
        raise Invalid(f"Unknown action {action!r}.", param="action")


def datasets_context() -> dict[str, Any]:
    services.mark_deleted_batches()
    found = selectors.datasets()
    progress = selectors.progress([d.pk for d in found])
    rows = []
    for dataset in found:
        p = progress[dataset.pk]
        eta = dataset.task_eta_seconds
        rows.append(
            {
                "dataset": dataset,
                "progress": p,
                "bar": charts.progress_bar(p.percent, f"{p.reviewed}/{p.total} reviewed"),
                "task_bar": charts.progress_bar(
                    dataset.task_percent, f"{dataset.task} {dataset.task_done}/{dataset.task_total}"
                )
                if dataset.task
                else "",
                "eta": f"about {charts.duration_text(eta)} left" if eta is not None else "",
                "result": "" if dataset.task else _result_message(dataset),
            }
        )
    busy = any(d.task for d in found)
    return {"rows": rows, "refresh": "every 2s" if busy else ""}


@staff_member_required
@require_http_methods(["GET", "POST"])
def curation(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            _curation_post(request)
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect("/curation")
    context = datasets_context()
    if request.headers.get("HX-Request"):
        return render(request, "curation/_datasets.html", context)
    context["formats"] = services.available_formats()
    return render_page(request, "curation/curation.html", "Datasets", context)


@staff_member_required
def download(request: HttpRequest, file_id: str) -> FileResponse:
    """An export's bytes for the operator (clients download through /v1/files)."""
    stored = get_file(file_id)
    return FileResponse(open_file(file_id), as_attachment=True, filename=stored.filename)


# --- /enhanced-workbench ------------------------------------------------------------------


def _charts(found: dict[str, Any]) -> dict[str, Any]:
    ratings = found["ratings"]
    agreement = found["agreement"]
    pair_names = [f"{a} × {b}" for a, b in agreement.pairs]
    pair_values: list[float | None] = [
        100 * same / n if n else None for n, same in agreement.pairs.values()
    ]
    return {
        "ratings_chart": charts.grouped_bar_chart(
            ["1", "2", "3", "4", "5"],
            [(model, [float(c) for c in counts]) for model, counts in ratings.items()],
            title="Ratings per model",
            unit="records",
            chart_id="cur-ratings",
        ),
        "agreement_chart": charts.grouped_bar_chart(
            pair_names,
            [("same rating", pair_values)],
            title="Agreement per reviewer pair",
            unit="%",
            chart_id="cur-agreement",
            top=100,
        ),
        "chars_chart": charts.grouped_bar_chart(
            found["chars"][0],
            [("answers", found["chars"][1])],
            title="Answer length",
            unit="characters → records",
            chart_id="cur-chars",
        ),
        "tokens_chart": charts.grouped_bar_chart(
            found["tokens"][0],
            [("answers", found["tokens"][1])],
            title="Output tokens",
            unit="tokens → records",
            chart_id="cur-tokens",
        ),
        "labels_chart": charts.multi_line_chart(
            {
                label: [(datetime.combine(day, time(12), tzinfo=UTC), float(n)) for day, n in days]
                for label, days in found["labels"].items()
            },
            title="Labels added per day",
            unit="records",
            chart_id="cur-labels",
        ),
    }


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{round(100 * share)} %"


@staff_member_required
def enhanced(request: HttpRequest) -> HttpResponse:
    flt, problem = _filter(request)
    found = selectors.analytics(flt)
    context = {
        "flt": flt,
        "problem": problem,
        "datasets": selectors.datasets(),
        "found": found,
        "agreement": found["agreement"],
        "rating_pct": _percent(found["agreement"].rating),
        "status_pct": _percent(found["agreement"].status),
        "query": urlencode(flt.as_params()),
        **_charts(found),
    }
    return render_page(request, "curation/enhanced.html", "Analytics", context)
