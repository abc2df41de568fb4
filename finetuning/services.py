"""Writes on fine-tuning jobs: create, validate, cancel, pause, resume; progress and results.

Each is one transaction; tasks are enqueued on commit; refusals are ``batchserver.errors``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from batchserver.errors import Conflict, Invalid, NotFound
from batchserver.models import ApiKey
from finetuning import validation
from finetuning.models import FineTuningCheckpoint, FineTuningEvent, FineTuningJob
from jobs.services import files as file_services
from models_registry.services import find_active_model, register_version

logger = logging.getLogger(__name__)
S = FineTuningJob.Status
RUN_WORK_TASK = "jobs.tasks.run_work"  # the worker runtime's loop (jobs.worker.loop)
AUTO = "auto"


def enqueue(func: str, *args: Any) -> None:
    transaction.on_commit(lambda: async_task(func, *args))


def add_event(
    job: FineTuningJob, message: str, *, level: str = "info", type: str = "message", **data: Any
) -> FineTuningEvent:
    step = data.get("step")
    return FineTuningEvent.objects.create(
        job=job, message=message, level=level, type=type, data=data or None, step=step
    )


def _training_file(owner: ApiKey, file_id: str, param: str):
    try:
        file = file_services.get_file(file_id, owner)
    except NotFound:
        raise NotFound("file", file_id, param=param) from None
    if file.purpose != "fine-tune":
        raise Invalid(
            f"File {file_id} has purpose '{file.purpose}'; upload it with purpose 'fine-tune'.",
            param=param,
            code="invalid_file_purpose",
        )
    return file


def _base_model(name: str):
    model = find_active_model(name)
    if model is None:
        raise Invalid(
            f"The model '{name}' does not exist or is not available for fine-tuning.",
            param="model",
            code="model_not_found",
        )
    if model.kind != "generate":
        raise Invalid(
            f"The model '{name}' is an embedding model; only text generation models can be "
            "fine-tuned.",
            param="model",
            code="model_not_available",
        )
    return model


@transaction.atomic
def create_job(
    owner: ApiKey,
    *,
    model: str,
    training_file: str,
    validation_file: str | None = None,
    suffix: str | None = None,
    seed: int | None = None,
    metadata: dict[str, str] | None = None,
    hyperparameters: dict[str, Any] | None = None,
    method: str = "supervised",
    priority: int = 0,
) -> FineTuningJob:
    """A job in ``validating_files``; its files are checked by a task right after commit."""
    if method != "supervised":
        raise Invalid(
            f"Method '{method}' is not supported here; use 'supervised'.",
            param="method.type",
            code="unsupported_method",
        )
    _base_model(model)
    _training_file(owner, training_file, "training_file")
    if validation_file:
        _training_file(owner, validation_file, "validation_file")
        if validation_file == training_file:
            raise Invalid(
                "The validation file must differ from the training file.",
                param="validation_file",
                code="same_file",
            )
    job = FineTuningJob.objects.create(
        owner=owner,
        model=model,
        training_file=training_file,
        validation_file=validation_file or "",
        suffix=suffix or "",
        seed=seed if seed is not None else timezone.now().microsecond % 2**31,
        metadata=metadata,
        hyperparameters={k: v for k, v in (hyperparameters or {}).items() if v is not None},
        method=method,
        priority=priority,
    )
    add_event(job, f"Created fine-tuning job: {job.id}")
    add_event(job, f"Validating training file: {training_file}")
    enqueue("finetuning.tasks.validate_job", job.id)
    return job


def _read_report(job: FineTuningJob, file_id: str, counter: Any, max_tokens: int):
    handle = file_services.open_file(file_id, job.owner)
    return validation.check_file(validation.read_lines(handle), counter, max_tokens)


def validate_job(job_id: str) -> None:
    """Check the job's files with the base model's tokenizer; queue it or fail it clearly."""
    job = FineTuningJob.objects.select_related("owner").filter(pk=job_id).first()
    if job is None or job.status != S.VALIDATING_FILES:
        return
    try:
        base = _base_model(job.model)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base.local_path())
    except Invalid as exc:
        fail_job(job, exc.code, exc.message, exc.param)
        return
    except (OSError, ValueError) as exc:
        fail_job(job, "model_not_available", f"The base model cannot be read: {exc}", "model")
        return
    max_tokens = min(settings.FINETUNE_MAX_TOKENS, base.max_model_len or 10**9)
    counter = validation.token_counter(tokenizer)
    try:
        training = _read_report(job, job.training_file, counter, max_tokens)
        checked = _check_reports(job, training, counter, max_tokens)
    except NotFound as exc:
        fail_job(job, "file_not_found", exc.message, exc.param)
        return
    if checked is not None:
        fail_job(job, "invalid_training_file", checked[1], checked[0])
        return
    queue_validated(job, training.examples)


def _check_reports(job, training, counter, max_tokens) -> tuple[str, str] | None:
    """(param, message) of the first file at fault, or None when both are fine."""
    if not training.ok:
        return "training_file", validation.describe(training.problems, job.training_file)
    if training.examples < settings.FINETUNE_MIN_EXAMPLES:
        return "training_file", (
            f"File {job.training_file} has {training.examples} examples; at least "
            f"{settings.FINETUNE_MIN_EXAMPLES} are needed."
        )
    if job.validation_file:
        valid = _read_report(job, job.validation_file, counter, max_tokens)
        problems = valid.problems or validation.overlap(training, valid)
        if problems:
            return "validation_file", validation.describe(problems, job.validation_file)
    return None


def resolve_hyperparameters(asked: dict[str, Any], examples: int) -> tuple[int, int, float]:
    """OpenAI's ``auto``: a batch of about a tenth of the data (1-8), 3 epochs, multiplier 1."""
    batch = asked.get("batch_size", AUTO)
    epochs = asked.get("n_epochs", AUTO)
    multiplier = asked.get("learning_rate_multiplier", AUTO)
    batch = max(1, min(8, examples // 10)) if batch == AUTO else int(batch)
    epochs = 3 if epochs == AUTO else int(epochs)
    multiplier = 1.0 if multiplier == AUTO else float(multiplier)
    return epochs, min(batch, examples), multiplier


@transaction.atomic
def queue_validated(job: FineTuningJob, examples: int) -> None:
    epochs, batch, multiplier = resolve_hyperparameters(job.hyperparameters, examples)
    moved = job.transition(
        S.QUEUED,
        n_epochs=epochs,
        batch_size=batch,
        learning_rate_multiplier=multiplier,
        train_examples=examples,
        total_steps=math.ceil(examples / batch) * epochs,
    )
    if moved:
        add_event(job, f"Files validated: {examples} examples. Job queued.")
        enqueue(RUN_WORK_TASK)


@transaction.atomic
def fail_job(job: FineTuningJob, code: str, message: str, param: str | None = None) -> bool:
    """End a job ``failed`` with OpenAI's ``error`` object and an error event."""
    if job.is_final:
        return False
    moved = job.transition(S.FAILED, error={"code": code, "message": message, "param": param})
    if moved:
        add_event(job, message, level="error")
    return moved


@transaction.atomic
def request_cancel(job: FineTuningJob) -> FineTuningJob:
    """Cancel now; a running training stops at its next step (its worker watches the status)."""
    if job.is_final:
        raise Conflict(
            f"Fine-tuning job {job.id} has already ended ({job.status}).",
            param="fine_tuning_job_id",
            code="job_not_cancellable",
        )
    if job.transition(S.CANCELLED):
        add_event(job, "Fine-tuning job cancelled.")
    return job


@transaction.atomic
def request_pause(job: FineTuningJob) -> FineTuningJob:
    """Queued: paused at once. Running: ``pausing`` until the worker has saved a checkpoint."""
    targets: dict[str, str] = {S.QUEUED: S.PAUSED, S.RUNNING: S.PAUSING}
    target = targets.get(job.status)
    if target is None:
        raise Conflict(
            f"Fine-tuning job {job.id} is {job.status}; only a queued or running job pauses.",
            param="fine_tuning_job_id",
            code="job_not_pausable",
        )
    if job.transition(target):
        add_event(job, "Pause requested." if target == S.PAUSING else "Fine-tuning job paused.")
    return job


@transaction.atomic
def resume_job(job: FineTuningJob) -> FineTuningJob:
    """A paused job goes back to the queue; it resumes from its last checkpoint."""
    if job.status != S.PAUSED:
        raise Conflict(
            f"Fine-tuning job {job.id} is {job.status}; only a paused job resumes.",
            param="fine_tuning_job_id",
            code="job_not_paused",
        )
    if job.transition(S.QUEUED):
        add_event(job, "Fine-tuning job resumed.")
        enqueue(RUN_WORK_TASK)
    return job


@transaction.atomic
def settle_paused(job: FineTuningJob) -> None:
    """A pausing job whose training has stopped (checkpoint saved) is paused."""
    if job.status == S.PAUSING and job.transition(S.PAUSED, worker_id="", leased_until=None):
        add_event(job, f"Fine-tuning job paused at step {job.step}.")


# --- progress, reported by the training process through the worker ---------------------------


def job_folder(job: FineTuningJob) -> Path:
    return Path(settings.FINETUNE_DIR) / job.id


def output_folder(job: FineTuningJob) -> Path:
    return Path(settings.FINETUNE_MODELS_DIR) / job.id


def record_started(job: FineTuningJob, total_steps: int, resumed_from: int | None) -> None:
    """A slice started: steps after the checkpoint it resumed from will be trained again."""
    with transaction.atomic():
        if resumed_from is not None:
            job.events.filter(type="metrics", step__gt=resumed_from).delete()
        FineTuningJob.objects.filter(pk=job.pk).update(total_steps=total_steps)
        job.total_steps = total_steps
        if resumed_from:
            add_event(job, f"Resuming from the checkpoint at step {resumed_from}.")
        elif job.slices == 0:
            add_event(job, "Fine-tuning job started.")


def record_step(job: FineTuningJob, report: dict[str, Any]) -> None:
    """One training step: a metrics event, progress, trained tokens and the ETA."""
    step, total = int(report["step"]), int(report["total_steps"])
    seconds = float(report["seconds"])
    remaining = (total - step) * seconds / step if step else None
    fields = {
        "step": step,
        "total_steps": total,
        "train_loss": report["loss"],
        "trained_tokens": int(report["tokens"]),
        "training_seconds": seconds,
        "estimated_finish": timezone.now() + timedelta(seconds=remaining)
        if remaining is not None
        else None,
    }
    with transaction.atomic():
        FineTuningJob.objects.filter(pk=job.pk).update(**fields)
        for name, value in fields.items():
            setattr(job, name, value)
        add_event(
            job,
            f"Step {step}/{total}: training loss={report['loss']:.4f}",
            type="metrics",
            step=step,
            total_steps=total,
            train_loss=report["loss"],
            learning_rate=report.get("learning_rate"),
        )


def record_eval(job: FineTuningJob, report: dict[str, Any]) -> None:
    add_event(
        job,
        f"Step {report['step']}: validation loss={report['valid_loss']:.4f}",
        type="metrics",
        step=report["step"],
        valid_loss=report["valid_loss"],
    )


def record_checkpoint(job: FineTuningJob, report: dict[str, Any]) -> None:
    step = int(report["step"])
    loss = report.get("loss", job.train_loss)  # a checkpoint reported again on resume names its own
    metrics = {"train_loss": loss} if loss is not None else {}
    checkpoint, created = FineTuningCheckpoint.objects.get_or_create(
        job=job, step_number=step, defaults={"folder": report["folder"], "metrics": metrics}
    )
    if created:
        add_event(job, f"Checkpoint saved at step {step}.", step=step)


def complete_job(job: FineTuningJob, folder: Path) -> bool:
    """Register the merged folder as a new version of the base model, once.

    The status moves to ``succeeded`` and the model is registered in one transaction: a cancel
    that won the race leaves nothing registered (and the folder is removed), a slice that runs
    again after a crash finds the job already succeeded.
    """
    base = find_active_model(job.model)
    results = results_file(job)
    moved = False
    with transaction.atomic():
        job.refresh_from_db()
        name = job.model_name()
        if base is not None and job.status in (S.RUNNING, S.PAUSING):
            moved = job.transition(S.SUCCEEDED, fine_tuned_model=name, result_files=[results.id])
        if moved and base is not None:
            register_version(
                name=name,
                path=str(folder),
                parent=base,
                owned_by=job.owner_slug(),
                description=f"Fine-tuned by {job.id} on {job.training_file}.",
            )
            add_event(job, f"New fine-tuned model created: {name}")
            add_event(job, "The job has successfully completed.")
    if not moved:
        file_services.delete_file(results)
        shutil.rmtree(folder, ignore_errors=True)
        if base is None:
            fail_job(job, "model_not_found", f"The base model '{job.model}' is gone.", "model")
    return moved


def results_file(job: FineTuningJob):
    """The results file (``fine-tune-results``): one CSV row per step, like OpenAI's."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["step", "train_loss", "valid_loss", "learning_rate"])
    valid = {
        e.step: (e.data or {}).get("valid_loss") for e in job.events.filter(step__isnull=False)
    }
    for event in job.events.filter(type="metrics").exclude(data__train_loss=None).order_by("step"):
        data = event.data or {}
        writer.writerow(
            [
                event.step,
                data.get("train_loss"),
                valid.get(event.step) or "",
                data.get("learning_rate"),
            ]
        )
    filename = f"{job.id}_results.csv"
    content = ContentFile(out.getvalue().encode(), name=filename)
    return file_services.create_file(
        job.owner, content, purpose="fine-tune-results", filename=filename
    )


def release_folder(job: FineTuningJob) -> None:
    """Remove what a finished job keeps no more: its data copy and optimizer states."""
    folder = job_folder(job)
    for name in ("train.jsonl", "valid.jsonl"):
        (folder / name).unlink(missing_ok=True)


def register_checkpoint(checkpoint: FineTuningCheckpoint) -> None:
    """Ask for a checkpoint to be served as a model (``…:ckpt-step-N``): merged by a task."""
    if checkpoint.registered_model:
        raise Conflict(
            f"Checkpoint {checkpoint.id} is already served as {checkpoint.registered_model}.",
            param="checkpoint_id",
            code="already_registered",
        )
    if not (Path(checkpoint.folder) / "adapter_model.safetensors").exists():
        raise Conflict(
            f"Checkpoint {checkpoint.id} is no longer on disk.",
            param="checkpoint_id",
            code="checkpoint_gone",
        )
    add_event(checkpoint.job, f"Registering the checkpoint at step {checkpoint.step_number}.")
    enqueue("finetuning.tasks.register_checkpoint", checkpoint.id)


def record_checkpoint_model(checkpoint: FineTuningCheckpoint, folder: Path) -> None:
    base = find_active_model(checkpoint.job.model)
    if base is None:
        return
    with transaction.atomic():
        updated = FineTuningCheckpoint.objects.filter(pk=checkpoint.pk, registered_model="").update(
            registered_model=checkpoint.model_name
        )
        if updated:
            register_version(
                name=checkpoint.model_name,
                path=str(folder),
                parent=base,
                owned_by=checkpoint.job.owner_slug(),
                description=f"Checkpoint at step {checkpoint.step_number} of {checkpoint.job_id}.",
            )
            add_event(checkpoint.job, f"Checkpoint model created: {checkpoint.model_name}")
