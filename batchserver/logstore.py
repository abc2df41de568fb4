"""A bounded store of recent log lines, for the console's /logs page and a batch's page.

``StoreHandler`` (installed on the root logger by ``batchserver.logging.logging_config``) keeps
records in a bounded in-memory buffer; a daemon thread writes them to the ``LogLine`` table in
bulk every ``LOG_STORE_FLUSH_SECONDS`` and deletes the rows beyond ``LOG_STORE_MAX_LINES``, so
the table stays capped whatever the traffic. Logging never waits for the database: when the
database is away, lines stay in the buffer (its oldest dropped when full) until it is back.
With ``LOG_STORE_FLUSH_SECONDS = 0`` no thread runs and ``flush()`` writes (tests).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from batchserver import correlation

BUFFER_LINES = 5_000
MESSAGE_CHARS = 4_000
# Loggers whose lines would be written by the store itself, or would flood it.
SKIPPED = ("django.db.backends", "django.server", "django_q.", "batchserver.logstore")

_local = threading.local()


def process_kind(argv: list[str] | None = None) -> str:
    """web, worker or command: what this process is, for the log page's filter."""
    explicit = os.environ.get("BATCHSERVER_PROCESS", "")
    if explicit:
        return explicit[:20]
    args = " ".join(argv if argv is not None else sys.argv)
    if "qcluster" in args:
        return "worker"
    if any(word in args for word in ("gunicorn", "runserver", "uvicorn", "wsgi")):
        return "web"
    return "command"


class StoreHandler(logging.Handler):
    """Buffer records; a background thread (or ``flush``) writes them to the capped table."""

    instances: list[StoreHandler] = []

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.buffer: deque[dict[str, Any]] = deque(maxlen=BUFFER_LINES)
        self.kind = process_kind()
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        StoreHandler.instances.append(self)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(_local, "writing", False) or record.name.startswith(SKIPPED):
            return
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[0] is not None:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # a bad format string must not break the caller
            message = str(record.msg)
        self.buffer.append(
            {
                "at": datetime.fromtimestamp(record.created, tz=UTC),
                "levelno": record.levelno,
                "level": record.levelname[:10],
                "logger": record.name[:200],
                "process": getattr(record, "process_kind", None) or self.kind,
                "pid": record.process or os.getpid(),
                "correlation_id": _correlation_id(record),
                "message": message[:MESSAGE_CHARS],
            }
        )
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        # After a fork (django-q2 spawns its workers) the parent's thread is not running here.
        if self._thread is not None and self._thread_pid == os.getpid():
            return
        interval = _setting("LOG_STORE_FLUSH_SECONDS", 1.0)
        if interval <= 0:
            return
        self._thread_pid = os.getpid()
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="log-store", daemon=True
        )
        self._thread.start()

    def _run(self, interval: float) -> None:
        while True:
            time.sleep(interval)
            try:
                self.write()
            except Exception:  # the database is away: keep the lines, try again later
                pass
            finally:
                _close_connection()

    def write(self) -> int:
        """Write the buffered lines and trim the table; returns how many were written."""
        from django.apps import apps

        if not apps.ready or not self.buffer:
            return 0
        from batchserver.models import LogLine

        rows: list[dict[str, Any]] = []
        while self.buffer and len(rows) < 1000:
            rows.append(self.buffer.popleft())
        _local.writing = True
        try:
            created = LogLine.objects.bulk_create([LogLine(**row) for row in rows])
            newest = max((line.pk or 0) for line in created) if created else 0
            cap = int(_setting("LOG_STORE_MAX_LINES", 100_000))
            if newest > cap:
                LogLine.objects.filter(pk__lte=newest - cap).delete()
        except Exception:
            self.buffer.extendleft(reversed(rows))
            raise
        finally:
            _local.writing = False
        return len(rows)


def _correlation_id(record: logging.LogRecord) -> str:
    found = str(getattr(record, "correlation_id", "") or correlation.get() or "")
    return "" if found == "-" else found[:64]


def _setting(name: str, default: float) -> float:
    try:
        from django.conf import settings

        return float(getattr(settings, name, default))
    except Exception:
        return default


def _close_connection() -> None:
    try:
        from django.db import connection

        connection.close_if_unusable_or_obsolete()
    except Exception:
        pass


def flush() -> int:
    """Write every handler's buffered lines now (tests; the thread does it otherwise)."""
    written = 0
    for handler in StoreHandler.instances:
        while handler.buffer:
            written += handler.write()
    return written


def discard() -> None:
    """Forget the buffered lines (tests start from an empty buffer)."""
    for handler in StoreHandler.instances:
        handler.buffer.clear()
