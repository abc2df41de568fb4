"""The worker's heartbeat: a thread that reports to the worker's row and extends its leases.

A live worker keeps its chunks leased however long the engine takes; a dead one stops beating,
its leases run out after ``BATCH_LEASE_SECONDS``, and another worker claims its chunks.
"""

from __future__ import annotations

import logging
import multiprocessing.util
import os
import socket
import threading
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from batchserver import live
from jobs.worker import kinds
from jobs.worker.gpu import gpu_stats
from jobs.worker.models import Worker

logger = logging.getLogger(__name__)


def worker_id() -> str:
    """host:pid, the id this worker process reports under (and leases work to)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """What this worker process is doing, written to its ``Worker`` row every few seconds."""

    def __init__(self) -> None:
        self.worker_id = worker_id()
        self.state = Worker.State.IDLE
        self.loaded_model = ""
        self.batch_id = ""
        self.chunk: int | None = None
        self.work = ""
        self.requests_done = 0
        self.tokens_done = 0
        self.recent_tps: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self.beat()
        if settings.Q_CLUSTER.get("sync"):
            return  # tasks run inline (unit tests): no second thread writing to the database
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()
        multiprocessing.util.Finalize(None, self.stop, exitpriority=20)

    def stop(self) -> None:
        self._stop.set()
        self.state = Worker.State.STOPPED
        try:
            self.beat()
        except DatabaseError:
            pass

    def _loop(self) -> None:
        while not self._stop.wait(live.get("WORKER_HEARTBEAT_SECONDS")):
            try:
                self.beat()
            except DatabaseError as exc:  # the database is away: keep trying, never die
                logger.warning("heartbeat failed: %s", exc)
                close_old_connections()
        connection.close()

    def beat(self) -> None:
        now = timezone.now()
        Worker.objects.update_or_create(
            worker_id=self.worker_id,
            defaults={
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "last_heartbeat": now,
                "state": self.state,
                "loaded_model": self.loaded_model,
                "current_batch_id": self.batch_id,
                "current_chunk": self.chunk,
                "current_work": self.work,
                "requests_done": self.requests_done,
                "output_tokens_done": self.tokens_done,
                "recent_output_tokens_per_second": self.recent_tps,
                "gpu": gpu_stats(),
            },
        )
        lease = now + timedelta(seconds=live.get("BATCH_LEASE_SECONDS"))
        for kind in kinds.registered():
            kind.extend_leases(self.worker_id, lease)

    def working_on(self, unit: kinds.Unit, loaded_model: str | None, exclusive: bool) -> None:
        self.state = Worker.State.EXCLUSIVE if exclusive else Worker.State.RUNNING
        self.batch_id, self.chunk, self.work = unit.batch_id, unit.chunk, unit.label or unit.id
        self.loaded_model = loaded_model or ""
        if self._thread is None:
            self.beat()

    def finished_chunk(self, requests: int, output_tokens: int, seconds: float) -> None:
        self.requests_done += requests
        self.tokens_done += output_tokens
        if seconds > 0:
            self.recent_tps = round(output_tokens / seconds, 1)

    def loading(self, model: str) -> None:
        """The warm start is loading ``model`` (only shown while nothing else runs)."""
        if self.state == Worker.State.IDLE:
            self.state, self.work = Worker.State.LOADING, f"loading {model}"

    def loaded(self, model: str | None) -> None:
        """The warm start ended: idle with ``model`` loaded, unless a task took over meanwhile."""
        if self.state == Worker.State.LOADING:
            self.state, self.work = Worker.State.IDLE, ""
        if self.state == Worker.State.IDLE:
            self.loaded_model = model or ""

    def idle(self, loaded_model: str | None) -> None:
        self.state, self.batch_id, self.chunk, self.work = Worker.State.IDLE, "", None, ""
        self.loaded_model = loaded_model or ""


_heartbeat: Heartbeat | None = None


def get_heartbeat() -> Heartbeat:
    """This process's heartbeat, started on first use (in the worker process, not the web)."""
    global _heartbeat
    if _heartbeat is None or _heartbeat.worker_id != worker_id():
        _heartbeat = Heartbeat()
        _heartbeat.start()
    return _heartbeat
