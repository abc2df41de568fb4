"""Training as a kind of GPU work: exclusive, in resumable slices.

The worker runtime stops the engine before a slice runs (``exclusive``) and loads it again
after. A slice copies the job's data once, starts the training process, turns its reports into
events, checkpoints and progress, and at the slice's end (``FINETUNE_SLICE_SECONDS``), a pause or
a worker stop asks it to checkpoint and exit; the job is then released and the next task (on any
worker) resumes it from that checkpoint. A cancel kills the training at once. The last slice
registers the merged model and names it as the model the engine loads next
(``FINETUNE_LOAD_RESULT``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from finetuning import selectors, services
from finetuning.models import FineTuningJob
from finetuning.process import TrainingProcess
from jobs.services import files as file_services
from jobs.worker import kinds
from jobs.worker.engine.base import ModelSpec
from models_registry.services import find_active_model

logger = logging.getLogger(__name__)
S = FineTuningJob.Status
STATUS_CHECK_SECONDS = 1.0


def prepare(job: FineTuningJob) -> None:
    """The job folder: its data copied from the file store and the training config (once)."""
    folder = services.job_folder(job)
    folder.mkdir(parents=True, exist_ok=True)
    base = find_active_model(job.model)
    if base is None:
        raise LookupError(f"The base model '{job.model}' is no longer registered.")
    for file_id, name in ((job.training_file, "train.jsonl"), (job.validation_file, "valid.jsonl")):
        if file_id and not (folder / name).exists():
            partial = folder / f".{name}.partial"
            with file_services.open_file(file_id, job.owner) as source, partial.open("wb") as out:
                shutil.copyfileobj(source, out)
            partial.rename(folder / name)
    config = {
        "base_path": base.local_path(),
        "seed": job.seed,
        "max_length": min(settings.FINETUNE_MAX_TOKENS, base.max_model_len or 10**9),
        "batch_size": job.batch_size,
        "n_epochs": job.n_epochs,
        "learning_rate": settings.FINETUNE_BASE_LEARNING_RATE * (job.learning_rate_multiplier or 1),
        "checkpoint_steps": settings.FINETUNE_CHECKPOINT_STEPS,
        "output_folder": str(services.output_folder(job)),
        "threads": settings.FINETUNE_THREADS,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1))


class Slice:
    """One slice of training of one job on this worker."""

    def __init__(self, job: FineTuningJob, work: kinds.Slice) -> None:
        self.job = job
        self.work = work
        self.ends = time.monotonic() + settings.FINETUNE_SLICE_SECONDS
        self.steps = 0
        self.merged: str | None = None
        self.stopped = False
        self.failed: str | None = None

    def handle(self, message: dict[str, Any]) -> None:
        event = message["event"]
        if event == "started":
            services.record_started(self.job, message["total_steps"], message["resumed_from"])
        elif event == "step":
            self.steps += 1
            services.record_step(self.job, message)
        elif event == "eval":
            services.record_eval(self.job, message)
        elif event == "checkpoint":
            services.record_checkpoint(self.job, message)
        elif event == "stopped":
            self.stopped = True
        elif event == "merged":
            self.merged = message["folder"]

    def current_status(self) -> str | None:
        row = FineTuningJob.objects.filter(pk=self.job.pk).values("status", "worker_id").first()
        if row is None or row["worker_id"] != self.work.worker_id:
            return None  # deleted, or no longer ours (a lease lost while this worker stalled)
        return row["status"]

    def run(self) -> kinds.Outcome:
        process = TrainingProcess(services.job_folder(self.job), "train")
        checked = 0.0
        status: str | None = S.RUNNING
        for message in process.messages():
            if message is not None:
                self.handle(message)
            stepped = message is not None and message["event"] == "step"
            if stepped or time.monotonic() - checked >= STATUS_CHECK_SECONDS:
                checked, status = time.monotonic(), self.current_status()
                if status not in (S.RUNNING, S.PAUSING):
                    process.kill()
                    logger.info("fine-tuning %s: stopped (%s)", self.job.id, status)
                    return kinds.Outcome(items=self.steps)
                if status == S.PAUSING or time.monotonic() > self.ends or self.work.should_stop():
                    process.ask_to_stop()
        code = process.wait()
        return self.finish(code, process)

    def result_spec(self, completed: bool) -> ModelSpec | None:
        """The new model, for the engine to load as soon as the GPU is free: the next request
        names it (the time from ``succeeded`` to its first answer is then one model load,
        instead of a reload of the previous model followed by a swap)."""
        if not completed or not settings.FINETUNE_LOAD_RESULT:
            return None
        model = find_active_model(self.job.model_name())
        return ModelSpec.of(model) if model is not None else None

    def finish(self, code: int, process: TrainingProcess) -> kinds.Outcome:
        job = self.job
        job.refresh_from_db()
        if code == 0 and self.merged:
            completed = services.complete_job(job, services.output_folder(job))
            return kinds.Outcome(items=self.steps, load_after=self.result_spec(completed))
        if code == 0 and self.stopped:
            if job.status == S.PAUSING:
                services.settle_paused(job)
                return kinds.Outcome(items=self.steps)
            return kinds.Outcome(items=self.steps, more=job.status == S.RUNNING)
        tail = process.log_tail()
        disk_full = "No space left on device" in tail or "Errno 28" in tail
        code_name = "disk_full" if disk_full else "training_failed"
        what = "The disk is full" if disk_full else f"Training failed (exit code {code})"
        services.fail_job(job, code_name, f"{what}; nothing was registered. {tail[-600:]}")
        return kinds.Outcome(items=self.steps)


class FineTuningWork(kinds.WorkKind):
    """Fine-tuning jobs, the worker's second kind of GPU work."""

    name = "fine-tuning"
    exclusive = True

    def peek(self, worker_id: str, loaded_model: str | None) -> kinds.Candidate | None:
        head = (
            FineTuningJob.objects.claimable()
            .in_claim_order()
            .values_list("priority", "created_at")
            .first()
        )
        return kinds.Candidate(self.name, head[0], head[1]) if head else None

    def claim(self, worker_id: str, loaded_model: str | None) -> kinds.Unit | None:
        job = FineTuningJob.objects.claim_next(worker_id, settings.BATCH_LEASE_SECONDS)
        if job is None:
            return None
        return kinds.Unit(kind=self.name, id=job.id, label=f"fine-tuning {job.id}", payload=job)

    def run(self, unit: kinds.Unit, work: kinds.Slice) -> kinds.Outcome:
        job = FineTuningJob.objects.select_related("owner").get(pk=unit.id)
        if job.status == S.PAUSING:
            services.settle_paused(job)
        if job.status != S.RUNNING:
            return kinds.Outcome()
        try:
            prepare(job)
        except (LookupError, OSError) as exc:
            services.fail_job(job, "training_setup_failed", f"Could not prepare training: {exc}")
            return kinds.Outcome()
        FineTuningJob.objects.filter(pk=job.pk).update(slices=job.slices + 1)
        return Slice(job, work).run()

    def extend_leases(self, worker_id: str, until: datetime) -> int:
        return FineTuningJob.objects.extend_leases(worker_id, until)

    def release(self, unit: kinds.Unit) -> None:
        FineTuningJob.objects.release(unit.id, unit.payload.worker_id)

    def requeue_orphans(self, gone_worker_ids: list[str]) -> int:
        return FineTuningJob.objects.orphaned(gone_worker_ids).update(
            worker_id="", leased_until=None
        )

    def has_work(self) -> bool:
        return FineTuningJob.objects.claimable().exists()

    def queue_items(self) -> list[kinds.QueueItem]:
        return selectors.queue_items(self.name)

    def tick(self) -> None:
        """Pausing jobs whose worker is gone are paused (their last checkpoint is on disk)."""
        stale = FineTuningJob.objects.filter(status=S.PAUSING, leased_until__lt=timezone.now())
        for job in stale:
            services.settle_paused(job)
