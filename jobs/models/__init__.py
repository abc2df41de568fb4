"""The jobs app's models, one module per concept."""

from jobs.models.batches import Batch, BatchQuerySet, BatchRequest, InvalidTransition
from jobs.models.chunks import BatchChunk
from jobs.models.files import File, FileQuerySet, file_upload_to
from jobs.models.webhooks import WebhookDelivery, WebhookSubscription
from jobs.worker.models import Worker

__all__ = [
    "Batch",
    "BatchChunk",
    "BatchQuerySet",
    "BatchRequest",
    "File",
    "FileQuerySet",
    "InvalidTransition",
    "WebhookDelivery",
    "WebhookSubscription",
    "Worker",
    "file_upload_to",
]
