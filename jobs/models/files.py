"""Stored files: uploaded inputs and the output and error files of batches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models
from django.utils import timezone

from batchserver.models import ApiKey
from jobs.ids import new_file_id


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


class FileQuerySet(models.QuerySet):
    def owned_by(self, key: ApiKey) -> FileQuerySet:
        return self.filter(owner=key)

    def expired(self, now: datetime | None = None) -> FileQuerySet:
        return self.filter(expires_at__isnull=False, expires_at__lte=now or timezone.now())


def file_upload_to(instance: File, filename: str) -> str:
    return f"files/{instance.id}/{filename}"


class File(models.Model):
    """A stored file: uploaded input, or a batch's output / error JSONL."""

    class Purpose(models.TextChoices):
        BATCH = "batch"
        BATCH_OUTPUT = "batch_output"
        FINE_TUNE = "fine-tune"
        FINE_TUNE_RESULTS = "fine-tune-results"
        ASSISTANTS = "assistants"
        ASSISTANTS_OUTPUT = "assistants_output"
        VISION = "vision"
        USER_DATA = "user_data"
        EVALS = "evals"

    UPLOADABLE = ("batch", "fine-tune", "assistants", "vision", "user_data", "evals")

    id = models.CharField(primary_key=True, max_length=40, default=new_file_id, editable=False)
    owner = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="files")
    purpose = models.CharField(max_length=24, choices=Purpose.choices)
    filename = models.CharField(max_length=255)
    bytes = models.BigIntegerField(default=0)
    line_count = models.PositiveIntegerField(null=True, blank=True)
    content = models.FileField(upload_to=file_upload_to, max_length=400)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    objects = FileQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["owner", "created_at"])]

    def __str__(self) -> str:
        return f"{self.id} ({self.filename})"

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": _ts(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": _ts(self.expires_at),
            "status_details": None,
        }
