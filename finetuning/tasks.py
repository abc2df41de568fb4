"""django-q2 entry points of fine-tuning: take ids, re-query, call one service."""

from __future__ import annotations

import logging

from django.db import transaction

from finetuning import services
from finetuning.models import FineTuningCheckpoint
from finetuning.process import TrainingProcess

logger = logging.getLogger(__name__)


def validate_job(job_id: str) -> None:
    """Check a new job's files; it becomes ``queued`` or ``failed``."""
    services.validate_job(job_id)


def register_checkpoint(checkpoint_id: str) -> None:
    """Merge a checkpoint's adapter into a model folder and register it (``…:ckpt-step-N``)."""
    checkpoint = FineTuningCheckpoint.objects.select_related("job").filter(pk=checkpoint_id).first()
    if checkpoint is None or checkpoint.registered_model:
        return
    job = checkpoint.job
    output = services.output_folder(job).with_name(f"{job.id}-step-{checkpoint.step_number}")
    if not output.exists():
        process = TrainingProcess(services.job_folder(job), "merge", checkpoint.folder, str(output))
        for _ in process.messages():
            pass
        if process.wait() != 0:
            with transaction.atomic():
                services.add_event(
                    job,
                    f"The checkpoint at step {checkpoint.step_number} could not be registered: "
                    f"{process.log_tail(3)}",
                    level="error",
                )
            return
    services.record_checkpoint_model(checkpoint, output)
