"""The object-store side of ``batchserver.storage``: django-storages' S3 storage that reads as a
stream and writes in bounded parts. Imported only when ``STORAGE_BACKEND=s3`` names it in
``STORAGES`` (boto3 and botocore cost a web or worker process ~15 MB of memory otherwise).
"""

from __future__ import annotations

import io
from typing import Any

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files import File
from storages.backends.s3 import S3Storage

READ_BUFFER_BYTES = 1024 * 1024


class _BodyReader(io.RawIOBase):
    """A raw, read-only stream over a botocore ``StreamingBody`` (one ``GetObject``)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class ObjectStorage(S3Storage):
    """django-storages' S3 storage, reading as a stream and writing in bounded parts."""

    presigned_urls = True  # downloads may be redirected to the store (FILE_DOWNLOAD_REDIRECT)

    def __init__(self, **options: Any) -> None:
        if options.get("transfer_config") is None:
            from boto3.s3.transfer import TransferConfig

            chunk = settings.S3_MULTIPART_CHUNK_BYTES
            options["transfer_config"] = TransferConfig(
                multipart_threshold=chunk,
                multipart_chunksize=chunk,
                max_concurrency=settings.S3_MAX_CONCURRENCY,
            )
        own_client_config = options.get("client_config") is not None
        super().__init__(**options)
        if not own_client_config:  # django-storages' own (addressing style, signature) + ours
            from botocore.config import Config

            self.client_config = self.client_config.merge(
                Config(
                    retries={"max_attempts": settings.S3_MAX_ATTEMPTS, "mode": "standard"},
                    connect_timeout=10,
                    read_timeout=60,
                )
            )

    def _open(self, name: str, mode: str = "rb") -> File:
        if mode not in ("r", "rb"):
            return super()._open(name, mode)
        key = self._normalize_name(name)
        try:
            answer = self.connection.meta.client.get_object(Bucket=self.bucket_name, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"File does not exist: {name}") from None
            raise
        reader = io.BufferedReader(_BodyReader(answer["Body"]), buffer_size=READ_BUFFER_BYTES)
        stream = File(reader, name=name)
        stream.size = answer.get("ContentLength")
        return stream
