"""The ``/fine-tuning`` console page: jobs with progress and ETA, a job's loss curve, events and
checkpoints, its resulting model; a create form; cancel, pause, resume and register buttons.

Forms post to the page and redirect (post/redirect/get); a refusal shows the service's message.
The jobs table refreshes itself with htmx while a job is active.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.http import require_http_methods

from batchserver import charts
from batchserver.console import render_page
from batchserver.errors import DomainError, NotFound
from batchserver.models import ApiKey
from curation import selectors as curation_selectors
from curation import services as curation_services
from finetuning import selectors, services
from finetuning.forms import JobForm
from finetuning.models import FineTuningJob
from jobs.services import files as file_services

S = FineTuningJob.Status
ACTIVE = (S.VALIDATING_FILES, S.QUEUED, S.RUNNING, S.PAUSING)


def _eta(job: FineTuningJob) -> str:
    if not job.estimated_finish or job.status not in (S.RUNNING, S.PAUSING):
        return ""
    seconds = max(0, int((job.estimated_finish - timezone.now()).total_seconds()))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def jobs_context() -> dict[str, Any]:
    """The live part: recent jobs with status, progress bar and ETA."""
    rows = []
    for job in FineTuningJob.objects.select_related("owner").order_by("-created_at")[:30]:
        percent = int(round(100 * job.progress()))
        label = f"{job.step}/{job.total_steps} steps ({percent}%)"
        rows.append({"job": job, "bar": charts.progress_bar(percent, label), "eta": _eta(job)})
    active = any(r["job"].status in ACTIVE for r in rows)
    return {"rows": rows, "refresh": "every 2s" if active else "", "now": timezone.now()}


def job_context(job: FineTuningJob) -> dict[str, Any]:
    return {
        "job": job,
        "loss_chart": charts.multi_line_chart(
            selectors.loss_series(job),
            title="Loss per step",
            unit="",
            chart_id="ft-loss-chart",
        ),
        "events": job.events.order_by("-created_at")[:40],
        "checkpoints": job.checkpoints.order_by("-step_number"),
        "tokens_per_second": job.tokens_per_second(),
    }


def _act(request: HttpRequest) -> str | None:
    """Do what a posted form asks; returns the job to show next."""
    action = request.POST.get("action")
    if action == "create":
        return _create(request)
    job_id = request.POST.get("job_id", "")
    job = FineTuningJob.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound("fine-tuning job", job_id, param="job_id")
    if action == "register":
        checkpoint = job.checkpoints.filter(pk=request.POST.get("checkpoint_id")).first()
        if checkpoint is None:
            raise NotFound("checkpoint", request.POST.get("checkpoint_id", ""), param="checkpoint")
        services.register_checkpoint(checkpoint)
        messages.success(request, f"Registering {checkpoint.model_name}; an event says when.")
        return job.id
    act = {
        "cancel": services.request_cancel,
        "pause": services.request_pause,
        "resume": services.resume_job,
    }.get(action or "")
    if act is None:
        raise NotFound("action", action or "", param="action")
    job = act(job)
    messages.success(request, f"Fine-tuning job {job.id}: {job.status}.")
    return job.id


def _create(request: HttpRequest) -> str | None:
    owner = ApiKey.console_key()
    form = _form(owner, request.POST, request.FILES)
    if not form.is_valid():
        request.invalid_form = form  # type: ignore[attr-defined]
        return None
    file_id, source = _training_file(owner, form)
    job = services.create_job(
        owner,
        model=form.cleaned_data["model"],
        training_file=file_id,
        suffix=form.cleaned_data.get("suffix"),
        hyperparameters=form.hyperparameters(),
        priority=form.cleaned_data.get("priority") or 0,
    )
    messages.success(
        request, f"Fine-tuning job {job.id} created{source}; its file is being validated."
    )
    return job.id


def _training_file(owner: ApiKey, form: JobForm) -> tuple[str, str]:
    """The chosen training file: uploaded, stored, or exported from a curation dataset now
    (curation's fine-tuning export; a refusal, such as too few accepted records, is shown)."""
    upload = form.cleaned_data.get("training_upload")
    if upload:
        stored = file_services.create_file(owner, upload, purpose="fine-tune", filename=upload.name)
        return stored.id, ""
    dataset_id = form.cleaned_data.get("curation_dataset")
    if dataset_id:
        dataset = curation_services.get_dataset(dataset_id)
        only = form.cleaned_data.get("curation_selection") or "accepted"
        export = curation_services.export_dataset(dataset, "finetune", only=only, owner=owner)
        return export.file_id, (
            f" from {export.lines} {only} records of curation dataset '{dataset.name}' "
            f"(file {export.file_id})"
        )
    return form.cleaned_data["training_file"], ""


def _form(owner: ApiKey, *args: Any, **kwargs: Any) -> JobForm:
    files = file_services.list_files(owner, purpose="fine-tune")
    return JobForm(
        *args,
        files_choices=[(f.id, f"{f.filename} ({f.id})") for f in files],
        dataset_choices=[(str(d.pk), d.name) for d in curation_selectors.datasets()],
        **kwargs,
    )


def _no_cache(response: HttpResponse) -> HttpResponse:
    patch_vary_headers(response, ["HX-Request"])
    add_never_cache_headers(response)
    return response


@staff_member_required
@require_http_methods(["GET", "POST"])
def page(request: HttpRequest) -> HttpResponse:
    """Follow every job live, look into one, create one."""
    if request.headers.get("HX-Request") == "true" and request.method == "GET":
        return _no_cache(render(request, "finetuning/_jobs.html", jobs_context()))
    problem = None
    if request.method == "POST":
        try:
            shown = _act(request)
        except DomainError as exc:
            problem = exc
        else:
            if not hasattr(request, "invalid_form"):
                return redirect(f"{request.path}?job={shown}" if shown else request.path)
    owner = ApiKey.console_key()
    # ?training_file=<id> (the curation page's "start a fine-tuning job" link) preselects a file
    initial = {"training_file": request.GET.get("training_file", "")}
    form = getattr(request, "invalid_form", None) or _form(owner, initial=initial)
    followed = FineTuningJob.objects.filter(pk=request.GET.get("job", "")).first()
    context = {
        "form": form,
        "problem": problem,
        **jobs_context(),
        **(job_context(followed) if followed else {}),
    }
    response = render_page(request, "finetuning/page.html", "Fine-tuning", context)
    if problem is not None or hasattr(request, "invalid_form"):
        response.status_code = 400
    return _no_cache(response)
