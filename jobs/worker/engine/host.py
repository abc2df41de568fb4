"""The engine host: one process per loaded model, in its own process group, that dies with us.

The worker starts the host with ``spawn``; the host makes itself a session leader (so it and
every process the engine starts share one process group) and watches its parent, stopping the
whole group when the worker dies. Its output (and its children's) goes to a pipe that the
worker relays into its own logging (``output.py``), so the log store keeps the engine's lines.
Stopping an engine means stopping that whole group and checking that nothing of it is left:
vLLM's own children are otherwise orphaned when their parent dies (the leak that lost the
predecessor 68% of its jobs). We only ever signal the group whose leader we started.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import psutil

from batchserver import correlation
from jobs.worker.engine.base import (
    Backend,
    EngineError,
    EngineRequest,
    EngineResult,
    ModelLoadError,
    ModelSpec,
)
from jobs.worker.engine.memory import GroupPeakSampler, group_pids
from jobs.worker.engine.output import OutputRelay
from jobs.worker.gpu import gpu_stats

logger = logging.getLogger(__name__)

LOAD_TIMEOUT = float(os.environ.get("BATCHSERVER_ENGINE_LOAD_TIMEOUT", "900"))
RUN_TIMEOUT = float(os.environ.get("BATCHSERVER_ENGINE_RUN_TIMEOUT", "1200"))
STOP_GRACE = float(os.environ.get("BATCHSERVER_ENGINE_STOP_GRACE", "15"))
# After a stop, each GPU's memory must fall back to within this much of what it was before the
# engine loaded (other tenants of the GPU may move it a little), within GPU_RELEASE_TIMEOUT.
GPU_MEMORY_SLACK_BYTES = 512 * 1024 * 1024
GPU_RELEASE_TIMEOUT = float(os.environ.get("BATCHSERVER_GPU_RELEASE_TIMEOUT", "30"))


def gpu_memory_used() -> list[int] | None:
    """Memory in use on each GPU this worker may use, or None on a machine without one."""
    stats = gpu_stats()
    return [d["memory_used_bytes"] for d in stats["devices"]] if stats else None


def wait_for_gpu_memory(baseline: list[int] | None) -> None:
    """Wait until every GPU is back near ``baseline``; raise EngineError if it never is."""
    if not baseline:
        return
    deadline = time.monotonic() + GPU_RELEASE_TIMEOUT
    while True:
        used = gpu_memory_used() or []
        over = [
            (i, u - b)
            for i, (u, b) in enumerate(zip(used, baseline, strict=False))
            if u - b > GPU_MEMORY_SLACK_BYTES
        ]
        if not over:
            return
        if time.monotonic() > deadline:
            held = ", ".join(f"GPU {i}: {extra // 2**20} MiB" for i, extra in over)
            raise EngineError(f"GPU memory not released after the engine stopped ({held})")
        time.sleep(0.5)


def _backend(kind: str) -> Backend:
    if kind == "vllm":
        from jobs.worker.engine.vllm_backend import VLLMBackend

        return VLLMBackend()
    from jobs.worker.engine.fake import FakeBackend

    return FakeBackend()


def _kill_own_group(*_: Any) -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _die_with_parent(parent_pid: int) -> None:
    """Notice the worker's death: a watcher thread sees the parent change, and kills the group.

    Not the kernel's PR_SET_PDEATHSIG: it fires when the *thread* that started this process
    ends, and the warm start starts the host from a thread that ends once the model is loaded
    (the engine was then killed under the first batch, and loaded a second time).
    """
    signal.signal(signal.SIGTERM, _kill_own_group)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        _kill_own_group()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:
        _kill_own_group()


def _log_format() -> str | None:
    """The worker's LOG_FORMAT, so the host's own log lines look like the worker's."""
    try:
        from django.conf import settings

        return getattr(settings, "LOG_FORMAT", None)
    except Exception:
        return None


def _write_output_to(output: Connection) -> None:
    """Send this process's stdout and stderr (and its children's) into the worker's relay."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(output.fileno(), 1)
    os.dup2(output.fileno(), 2)
    output.close()
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    # vLLM's engine core and workers are Python processes started from here: line by line too.
    os.environ["PYTHONUNBUFFERED"] = "1"


def host_main(
    conn: Connection,
    kind: str,
    spec: ModelSpec,
    parent_pid: int,
    log_format: str | None = None,
    output: Connection | None = None,
) -> None:
    """Entry point of the host process: load the model, then answer run requests until told."""
    os.setsid()
    if output is not None:
        _write_output_to(output)
    _die_with_parent(parent_pid)
    if log_format:
        from batchserver.logging import configure

        configure(log_format, os.environ.get("LOG_LEVEL", "INFO"))
    # huggingface_hub fixes its offline flag when first imported: set it before anything does.
    os.environ["HF_HUB_OFFLINE"] = "1"
    backend = _backend(kind)
    try:
        backend.load(spec)
    except Exception as exc:  # the worker decides what a failed load means
        conn.send(("load_error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            break
        # ("run", requests, correlation id): the id of the batch these requests belong to.
        op, payload = message[0], message[1]
        if op == "shutdown":
            break
        correlation_id = message[2] if len(message) > 2 else ""
        os.environ[correlation.ENV_VAR] = correlation_id  # for anything the engine spawns
        with correlation.bind(correlation_id):
            logger.info("engine host: running %d requests", len(payload))
            try:
                conn.send(("results", backend.run(payload)))
            except Exception as exc:
                logger.warning("engine host: run failed: %s", exc)
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    try:
        backend.shutdown()
    finally:
        conn.close()
    # The engine is shut down (its processes gone, their shared memory released): what is left
    # is this interpreter's own teardown of torch and vLLM, measured at ~4 s of every stop
    # and swap. Nothing of it matters once the log lines are out, so skip it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _with_cause(message: str, relay: OutputRelay | None) -> str:
    """A failed load's message, with the first exception the engine's processes wrote.

    vLLM's own message for a load that failed in its engine core is "Engine core
    initialization failed. See root cause above." — the cause is only in the output.
    """
    cause = relay.exceptions[0] if relay is not None and relay.exceptions else ""
    if not cause or cause in message:
        return message
    return f"{message} (cause, from the engine's output: {cause})"


def group_members(pgid: int) -> list[psutil.Process]:
    """Live processes of a process group (zombies already reaped by nobody are ignored)."""
    members = []
    for pid in group_pids(pgid):
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except psutil.Error:
            continue
    return members


class HostedBackend(Backend):
    """A backend that lives in its own host process; this object is the worker's handle on it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: Connection | None = None
        self.pgid: int | None = None
        self.gpu_baseline: list[int] | None = None
        self.output: OutputRelay | None = None
        # Samples the group's memory while it loads and while it runs (``peak_memory_bytes``).
        self.sampler: GroupPeakSampler | None = None

    def load(self, spec: ModelSpec) -> None:
        self.gpu_baseline = gpu_memory_used()
        ctx = multiprocessing.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe()
        output_reader, output_writer = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=host_main,
            name=f"engine-host:{spec.name}",
            args=(child_conn, self.kind, spec, os.getpid()),
            kwargs={"log_format": _log_format(), "output": output_writer},
            daemon=False,
        )
        self.process.start()
        child_conn.close()
        output_writer.close()
        pid = self.process.pid
        assert pid is not None  # started
        self.conn, self.pgid = parent_conn, pid
        # The relay owns the reading end from here (it closes it when the host's group is gone).
        self.output = OutputRelay(os.dup(output_reader.fileno()), pid)
        output_reader.close()
        self.output.correlation_id = correlation.get()
        self.output.start()
        # The host makes its pid its group's id at once (setsid); until then the sampler finds
        # no member and looks again at its next sample.
        self.sampler = sampler = GroupPeakSampler(pid)
        sampler.start()
        try:
            op, payload = self._receive(LOAD_TIMEOUT, f"loading {spec.name}")
        finally:
            sampler.stop()
        self.output.correlation_id = ""
        if op == "load_error":
            relay = self.output
            self.shutdown()  # waits for the group's last lines
            raise ModelLoadError(_with_cause(payload, relay))
        logger.info("engine host %s ready with %s", self.pgid, spec.name)

    def memory_bytes(self) -> int | None:
        """Resident memory of the engine's process group now, plus the GPU memory it took."""
        if self.pgid is None:
            return None
        total = 0
        for proc in group_members(self.pgid):
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total + self._gpu_taken()

    def peak_memory_bytes(self) -> int | None:
        """The group's highest summed RSS while it loaded and ran (``memory.GroupPeakSampler``),
        plus the GPU memory it holds now (vLLM reserves its share of a GPU at load)."""
        if self.sampler is None or self.sampler.peak_bytes is None:
            return None
        return self.sampler.peak_bytes + self._gpu_taken()

    def _gpu_taken(self) -> int:
        used = gpu_memory_used()
        if not used or not self.gpu_baseline:
            return 0
        return sum(max(0, u - b) for u, b in zip(used, self.gpu_baseline, strict=False))

    def run(self, requests: list[EngineRequest]) -> list[EngineResult]:
        if self.conn is None:
            raise EngineError("engine host is not running")
        if self.output is not None:
            self.output.correlation_id = correlation.get()
        sampler = self.sampler
        if sampler is not None:
            sampler.start()
        try:
            try:
                self.conn.send(("run", requests, correlation.get()))
            except (BrokenPipeError, OSError) as exc:
                self.shutdown()
                raise EngineError(f"engine host unreachable: {exc}") from exc
            op, payload = self._receive(RUN_TIMEOUT, f"running {len(requests)} requests")
        finally:
            if sampler is not None:
                sampler.stop()
        if self.output is not None:
            self.output.correlation_id = ""
        if op == "error":
            raise EngineError(payload)
        return payload

    def _receive(self, timeout: float, doing: str) -> tuple[str, Any]:
        assert self.conn is not None and self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.conn.poll(0.2):
                    return self.conn.recv()
            except (EOFError, OSError):
                pass
            if not self.process.is_alive():
                code = self.process.exitcode
                self.shutdown()
                raise EngineError(f"engine host died while {doing} (exit code {code})")
        self.shutdown()
        raise EngineError(f"engine host did not answer within {timeout:.0f}s while {doing}")

    def shutdown(self) -> None:
        """Ask politely, then stop the whole group, then check that nothing of it is left."""
        if self.sampler is not None:
            self.sampler.stop()  # its peak stays readable
        if self.process is None:
            return
        if self.conn is not None and self.process.is_alive():
            try:
                self.conn.send(("shutdown", None))
            except OSError:
                pass
            self.process.join(STOP_GRACE)
        self._stop_group()
        self.process.join(5)
        if self.conn is not None:
            self.conn.close()
        if self.output is not None:
            self.output.thread.join(2.0)  # the group is gone: its last lines are on their way
        self.process, self.conn, self.pgid, self.output = None, None, None, None
        wait_for_gpu_memory(self.gpu_baseline)

    def _stop_group(self) -> None:
        pgid = self.pgid
        if pgid is None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 10.0)):
            if not group_members(pgid):
                return
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
        left = group_members(pgid)
        if left:
            raise EngineError(f"engine processes survived SIGKILL: {[p.pid for p in left]}")
