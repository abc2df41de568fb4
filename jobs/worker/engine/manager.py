"""The engine a worker process keeps warm across tasks, and the swap between models."""

from __future__ import annotations

import logging
import multiprocessing.util
import os
import socket
import threading
import time

from django.conf import settings

from jobs.worker import signals
from jobs.worker.engine.base import Backend, EngineRequest, EngineResult, ModelSpec

logger = logging.getLogger(__name__)
PEAK_REPORT_STEP = 4 * 2**20  # bytes


def make_backend(kind: str) -> Backend:
    """The backend named by ``BATCHSERVER_ENGINE``."""
    if kind == "fake":
        from jobs.worker.engine.fake import FakeBackend

        return FakeBackend()
    if kind in ("vllm", "fake-hosted"):
        from jobs.worker.engine.host import HostedBackend

        return HostedBackend("vllm" if kind == "vllm" else "fake")
    raise ValueError(f"Unknown BATCHSERVER_ENGINE {kind!r}: use 'vllm' or 'fake'.")


class EngineManager:
    """One loaded model at a time; loading another one shuts the current engine down first.

    A lock serialises loads, runs and shutdowns: the warm start (``jobs.worker.warm``) loads
    in a thread of its own while the first task may already want the engine, and then waits
    for that load instead of starting a second engine beside it.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.backend: Backend | None = None
        self.loaded: ModelSpec | None = None
        self.lock = threading.RLock()
        self._loading: Backend | None = None  # a backend being loaded (for ``stop_at_exit``)
        self._reported_peak: int | None = None  # the loaded engine's peak, as last signalled

    @property
    def loaded_model(self) -> str | None:
        return self.loaded.name if self.loaded else None

    def ensure_loaded(self, spec: ModelSpec) -> None:
        with self.lock:
            self._ensure_loaded(spec)

    def _ensure_loaded(self, spec: ModelSpec) -> None:
        if self.backend is not None and self.loaded == spec:
            return
        self.shutdown()
        logger.info("engine: loading model %s", spec.name)
        started = time.monotonic()
        backend = self._loading = make_backend(self.kind)
        try:
            backend.load(spec)
        except BaseException:
            backend.shutdown()
            raise
        finally:
            self._loading = None
        self.backend, self.loaded = backend, spec
        seconds = round(time.monotonic() - started, 3)
        memory = backend.memory_bytes()
        self._reported_peak = peak = backend.peak_memory_bytes()
        logger.info("engine: %s loaded in %.1f s", spec.name, seconds)
        signals.engine_loaded.send(
            sender=EngineManager,
            model=spec.name,
            seconds=seconds,
            memory_bytes=memory,
            peak_memory_bytes=peak,
            worker_id=_worker_id(),
        )

    def run(self, spec: ModelSpec, requests: list[EngineRequest]) -> list[EngineResult]:
        with self.lock:
            self._ensure_loaded(spec)
            assert self.backend is not None
            try:
                results = self.backend.run(requests)
            except BaseException:
                # After a failed run the engine's state is unknown: start from scratch next time.
                self.shutdown()
                raise
            self._report_peak(spec)
            return results

    def _report_peak(self, spec: ModelSpec) -> None:
        """Tell the apps when a run took the engine's peak memory higher by ``PEAK_REPORT_STEP``
        or more: the figure they keep is within that of the peak, and a peak creeping up by a
        few pages does not cost a database write per chunk."""
        assert self.backend is not None
        peak = self.backend.peak_memory_bytes()
        if peak is None:
            return
        if self._reported_peak is not None and peak - self._reported_peak < PEAK_REPORT_STEP:
            return
        self._reported_peak = peak
        signals.engine_peak_memory.send(
            sender=EngineManager, model=spec.name, peak_memory_bytes=peak, worker_id=_worker_id()
        )

    def shutdown(self, quiet: bool = False) -> None:
        with self.lock:
            self._shutdown(quiet)

    def stop_at_exit(self) -> None:
        """At process exit: stop the engine, even one that another thread is still loading.

        The warm start may hold the lock for the whole load; waiting for it would keep a
        stopping worker alive that long, so after a short wait the loading engine is stopped
        from here (its loader then fails, which at exit nobody minds).
        """
        if self.lock.acquire(timeout=1.0):
            try:
                self._shutdown(quiet=True)
            finally:
                self.lock.release()
            return
        for backend in (self._loading, self.backend):
            if backend is not None:
                backend.shutdown()

    def _shutdown(self, quiet: bool) -> None:
        if self.backend is not None:
            if not quiet:  # at interpreter exit the log streams may be closed already
                logger.info("engine: shutting down %s", self.loaded_model)
            try:
                self.backend.shutdown()
            finally:
                self.backend, self.loaded = None, None


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


_manager: EngineManager | None = None


def get_engine() -> EngineManager:
    """This process's engine manager, created on first use."""
    global _manager
    if _manager is None or _manager.kind != settings.BATCHSERVER_ENGINE:
        if _manager is not None:
            _manager.shutdown()
        _manager = EngineManager(settings.BATCHSERVER_ENGINE)
        # At exit, multiprocessing joins non-daemonic children such as the engine host, which
        # would wait forever. Its exit hook runs finalizers first (also in a django-q2 worker
        # process, where atexit handlers never run): stop the engine there.
        multiprocessing.util.Finalize(None, _manager.stop_at_exit, exitpriority=10)
    return _manager
