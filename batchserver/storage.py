"""Stored files on the local disk or on any S3-compatible object store, with one set of rules.

Every app reads and writes stored bytes through Django's storage API; this module adds what
that API leaves open, the same way for both kinds of store:

- **Reading streams.** ``batchserver.object_storage.ObjectStorage`` (django-storages'
  ``S3Storage``) opens an object for
  reading as the body of one ``GetObject``, read as it is consumed: a 200 MB input is
  validated or downloaded with a buffer's worth of memory, and without a copy on local disk
  (django-storages' own reader downloads the whole object first, into memory by default).
- **Writing is bounded.** Large objects are sent as a multipart upload in parts of
  ``S3_MULTIPART_CHUNK_BYTES``, at most ``S3_MAX_CONCURRENCY`` at a time: memory does not grow
  with the file.
- **Nothing is published half-written** (``publish``). A file is finished in a local temporary
  file first. On the local disk it is moved into place with ``os.replace`` (atomic on one file
  system); on an object store it is uploaded to its final key, which an object store only
  shows once the upload is complete (a multipart upload is invisible until its last part is
  committed, and aborted when it fails). The caller registers the file (its database row)
  only after ``publish`` returned, and removes the object again if that registration fails.
- **Downloads** are streamed through the web process, or answered with a redirect to a
  presigned URL of the object store (``FILE_DOWNLOAD_REDIRECT``), valid
  ``FILE_DOWNLOAD_URL_SECONDS``.
"""

from __future__ import annotations

import os
import sys

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage
from django.utils.http import content_disposition_header


def store_errors() -> tuple[type[BaseException], ...]:
    """What a failing object store raises (a refused, cut or timed-out transfer).

    Only what is already imported: with files on the local disk, boto3 is never loaded and
    there is nothing to catch (an empty tuple catches nothing).
    """
    errors: list[type[BaseException]] = []
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is not None:
        errors += [botocore.BotoCoreError, botocore.ClientError]
    boto3 = sys.modules.get("boto3.exceptions")
    if boto3 is not None:  # a failed multipart upload: S3UploadFailedError
        errors.append(boto3.Boto3Error)
    return tuple(errors)


class StoreUnavailable(OSError):
    """The object store refused or broke a transfer (it is down, or the network to it is).

    An ``OSError``, so callers treat it as they treat a full disk: nothing was published, and
    the work is tried again later.
    """


def _local_path(storage: Storage, name: str) -> str | None:
    """The file system path of ``name`` in ``storage``, or None for a remote store."""
    try:
        return storage.path(name)
    except NotImplementedError:
        return None


def publish(storage: Storage, local_path: str, name: str) -> str:
    """Move the finished local file ``local_path`` into ``storage`` as ``name``, whole or not
    at all; returns the stored name. The local file is gone afterwards, whatever happened."""
    target = _local_path(storage, name)
    try:
        if target is not None:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(local_path, target)
            return name
        with open(local_path, "rb") as handle:
            return storage.save(name, File(handle, name=os.path.basename(name)))
    except store_errors() as exc:
        raise StoreUnavailable(f"the object store failed: {exc}") from exc
    finally:
        if os.path.exists(local_path):
            os.unlink(local_path)


def discard(storage: Storage, name: str) -> None:
    """Remove ``name`` if the store lets us now; an object left behind is unreachable (no row
    points to it) and, for derived names, overwritten by the next attempt."""
    try:
        storage.delete(name)
    except (OSError, *store_errors()):
        pass


def download_url(storage: Storage, name: str, filename: str, content_type: str) -> str | None:
    """A presigned URL for ``name`` when downloads are redirected to the store, else None."""
    if not settings.FILE_DOWNLOAD_REDIRECT or not getattr(storage, "presigned_urls", False):
        return None
    return storage.url(
        name,
        parameters={
            "ResponseContentDisposition": content_disposition_header(True, filename),
            "ResponseContentType": content_type,
        },
        expire=settings.FILE_DOWNLOAD_URL_SECONDS,
    )
