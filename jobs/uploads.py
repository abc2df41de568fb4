"""An upload handler that enforces the size cap while the bytes stream in, and counts lines."""

from __future__ import annotations

from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler

from batchserver import live


class LimitedUploadHandler(TemporaryFileUploadHandler):
    """Streams the upload to a temporary file; stops storing as soon as it passes the cap."""

    def __init__(self, request=None, max_bytes: int | None = None) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes or live.get("BATCH_MAX_FILE_BYTES")
        self.received = 0
        self.newlines = 0
        self.last_byte = b""
        self.too_large = False

    def receive_data_chunk(self, raw_data: bytes, start: int):
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            self.too_large = True
            self.file.close()
            # Read (and drop) the rest, so the client gets our answer rather than a reset.
            raise StopUpload(connection_reset=False)
        self.newlines += raw_data.count(b"\n")
        if raw_data:
            self.last_byte = raw_data[-1:]
        return super().receive_data_chunk(raw_data, start)

    @property
    def lines(self) -> int:
        """Physical lines: a last line without a trailing newline counts too."""
        return self.newlines + (1 if self.last_byte and self.last_byte != b"\n" else 0)
