"""Writes on stored files: upload, delete, expiry clean-up."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import IO

from django.core.files import File as DjangoFile
from django.db import transaction
from django.utils import timezone

from batchserver.errors import NotFound, Unavailable
from batchserver.models import ApiKey
from batchserver.storage import store_errors
from jobs.models import File

logger = logging.getLogger(__name__)


def create_file(
    owner: ApiKey,
    uploaded: DjangoFile,
    *,
    purpose: str,
    filename: str,
    expires_after_seconds: int | None = None,
    line_count: int | None = None,
) -> File:
    """Store an uploaded file: moved from its temporary upload location on the local disk, or
    streamed to the object store in bounded parts. The row is written only once the bytes are
    stored whole; a store that fails mid-way leaves neither (``Unavailable``: try again)."""
    now = timezone.now()
    expires_at = now + timedelta(seconds=expires_after_seconds) if expires_after_seconds else None
    file = File(
        owner=owner,
        purpose=purpose,
        filename=os.path.basename(filename),
        bytes=uploaded.size,
        created_at=now,
        expires_at=expires_at,
        line_count=line_count,
    )
    try:
        file.content.save(file.filename, uploaded, save=False)
    except store_errors() as exc:
        logger.warning("upload of %s not stored: the object store failed: %s", file.id, exc)
        raise Unavailable(
            "The file store is unavailable; nothing was stored. Try again later.",
            param="file",
            code="storage_unavailable",
        ) from exc
    # The upload's temporary file was moved into storage: close it now (Django's close knows it
    # is gone) rather than leave the garbage collector to unlink a missing file.
    uploaded.close()
    try:
        file.save(force_insert=True)
    except BaseException:
        file.content.delete(save=False)
        raise
    return file


def create_file_from_stream(
    owner: ApiKey, stream: IO[bytes], *, purpose: str, filename: str, line_count: int | None = None
) -> File:
    """Store bytes another app wrote (an export in a temporary file) as a Files API file, so
    the SDK can download it. ``stream`` must be seekable; it is read in chunks, never whole."""
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    wrapped = DjangoFile(stream, name=filename)
    wrapped.size = size
    return create_file(owner, wrapped, purpose=purpose, filename=filename, line_count=line_count)


def get_file(file_id: str, owner: ApiKey | None = None) -> File:
    """The file ``file_id`` (only if ``owner`` owns it, when given); ``NotFound`` otherwise."""
    files = File.objects.all() if owner is None else File.objects.owned_by(owner)
    try:
        return files.get(pk=file_id)
    except File.DoesNotExist:
        raise NotFound("file", file_id, param="file_id") from None


def list_files(owner: ApiKey, purpose: str | None = None, limit: int = 100) -> list[File]:
    """The newest files of ``owner`` (of one ``purpose``, when given), for other apps' forms."""
    files = File.objects.owned_by(owner).order_by("-created_at")
    if purpose is not None:
        files = files.filter(purpose=purpose)
    return list(files[:limit])


def open_file(file_id: str, owner: ApiKey | None = None, *, param: str = "file_id") -> IO[bytes]:
    """The stored bytes of a file, opened for reading (other apps read uploads through this).

    ``NotFound`` when there is no such file for ``owner``, or its content is gone.
    """
    file = get_file(file_id, owner)
    try:
        return file.content.open("rb")
    except FileNotFoundError:
        raise NotFound("file content", file_id, param=param) from None


def delete_file(file: File) -> None:
    """Delete the row now and the stored bytes once that is committed."""
    name, storage = file.content.name, file.content.storage
    file.delete()
    transaction.on_commit(lambda: storage.delete(name) if name else None)


@dataclass
class CleanupReport:
    files: int = 0
    bytes: int = 0


def cleanup_expired_files(now=None) -> CleanupReport:
    """Remove every file past its ``expires_at``; returns what was freed."""
    report = CleanupReport()
    for file in File.objects.expired(now).iterator():
        with transaction.atomic():
            delete_file(file)
        report.files += 1
        report.bytes += file.bytes
    if report.files:
        logger.info("removed %d expired files (%d bytes)", report.files, report.bytes)
    return report
