"""The first kind of GPU work: batch chunks. Claim one, run it on the engine, commit its
results exactly once, and settle the batch when its last chunk is done.

``BatchChunkWork`` implements ``jobs.worker.kinds.WorkKind``; ``JobsConfig.ready`` registers it.
The lease of a chunk only ever changes through ``BatchChunk``'s own methods.
"""

from __future__ import annotations

import json
import logging
import math
import os
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from batchserver import fastjson
from batchserver.backoff import backoff_delay
from batchserver.db.retry import db_retry
from jobs import selectors, signals
from jobs.models import Batch, BatchChunk, BatchRequest
from jobs.services import lifecycle
from jobs.worker import kinds
from jobs.worker.engine.base import (
    EngineError,
    EngineRequest,
    EngineResult,
    ModelLoadError,
    ModelSpec,
)
from jobs.worker.engine.manager import get_engine
from jobs.worker.models import Worker
from models_registry.services import (
    find_active_model,
    record_load,
    record_peak_memory,
    record_throughput,
)

logger = logging.getLogger(__name__)
R = BatchRequest.Status
C = BatchChunk.Status


def model_spec(model) -> ModelSpec:
    """What the engine loads for a registry entry."""
    return ModelSpec.of(model)


def note_engine_loaded(
    sender,
    model: str,
    seconds: float,
    memory_bytes: int | None,
    peak_memory_bytes: int | None = None,
    **kw,
) -> None:
    """``engine_loaded``: the registry keeps the model's last load figures.

    Only informative: a database hiccup here must never fail the load that just succeeded.
    """
    try:
        record_load(model, seconds, memory_bytes, peak_memory_bytes)
    except Exception as exc:
        logger.warning("could not record the load of %s: %s", model, exc)


def note_engine_peak_memory(sender, model: str, peak_memory_bytes: int, **kw) -> None:
    """``engine_peak_memory``: a run took the engine's peak higher; the registry keeps it.

    Only informative, like the load figures: never fails the run.
    """
    try:
        record_peak_memory(model, peak_memory_bytes)
    except Exception as exc:
        logger.warning("could not record the peak memory of %s: %s", model, exc)


def warm_model_name(worker_id: str) -> str:
    """The model a freshly started worker loads before work arrives (``WORKER_WARM_MODEL``).

    A model name, or ``auto``: the model of the first chunk waiting, else the one a worker of
    this host had loaded last, else the newest batch's, else ``WORKER_DEFAULT_MODEL``.
    """
    choice = settings.WORKER_WARM_MODEL
    if choice.lower() != "auto":
        return choice
    waiting = runnable_chunks().in_claim_order(None).values_list("batch__model", flat=True)
    host = worker_id.rsplit(":", 1)[0]
    served = (
        Worker.objects.filter(hostname=host)
        .exclude(loaded_model="")
        .order_by("-last_heartbeat")
        .values_list("loaded_model", flat=True)
    )
    newest = Batch.objects.exclude(model="").order_by("-created_at").values_list("model", flat=True)
    for candidates in (waiting, served, newest):
        name = candidates.first()
        if name:
            return name
    return settings.WORKER_DEFAULT_MODEL


def runnable_chunks():
    """Chunks any worker may claim now."""
    return BatchChunk.objects.runnable()


@db_retry("claiming a chunk", lifecycle.note_db_recovery)
def claim_chunk(worker: str, loaded_model: str | None) -> BatchChunk | None:
    """Lease the next chunk: highest priority, then the model already loaded, then oldest."""
    return BatchChunk.objects.claim_next(worker, loaded_model)


def run_chunk(chunk: BatchChunk) -> tuple[int, int]:
    """Run the pending requests of a leased chunk and commit what the engine answered.

    Returns how many requests were written and their output tokens.
    """
    batch = chunk.batch
    rows = _pending_rows(chunk)
    if not rows:
        chunk.mark_done()
        return 0, 0
    model = db_retry("looking up the model", lifecycle.note_db_recovery)(find_active_model)(
        batch.model
    )
    if model is None:
        _fail_rows(chunk, rows, "model_not_found", f"Model {batch.model!r} is not registered.")
        return 0, 0
    try:
        # A chunk that already crashed the engine once is run in halves until the request
        # that keeps crashing it stands alone.
        results = _run(model_spec(model), batch.endpoint, rows, isolate=chunk.attempts > 1)
    except ModelLoadError as exc:
        logger.error("batch %s: model %s failed to load: %s", batch.id, batch.model, exc)
        _after_load_failure(chunk, str(exc))
        return 0, 0
    except EngineError as exc:
        logger.warning("batch %s chunk %s: engine failed: %s", batch.id, chunk.index, exc)
        _retry_or_fail(chunk, rows, "engine_error", str(exc))
        return 0, 0
    written = record_results(chunk, rows, results)
    if batch.load_failures:
        Batch.objects.filter(pk=batch.pk).update(load_failures=0)
    return written, sum(r.output_tokens for r in results)


class Pending(NamedTuple):
    """A request still to run: plain values, since a model instance per row costs more here."""

    id: int
    custom_id: str
    body: dict[str, Any]


@db_retry("reading a chunk's requests", lifecycle.note_db_recovery)
def _pending_rows(chunk: BatchChunk) -> list[Pending]:
    rows = (
        BatchRequest.objects.filter(batch_id=chunk.batch_id, chunk=chunk.index, status=R.PENDING)
        .order_by("line")
        .values_list("id", "custom_id", "body")
    )
    return [Pending(pk, custom_id, fastjson.loads(body)) for pk, custom_id, body in rows]


def _run(spec, endpoint: str, rows: list[Pending], isolate: bool) -> list[EngineResult]:
    requests = [EngineRequest(r.custom_id, endpoint, r.body) for r in rows]
    try:
        return get_engine().run(spec, requests)
    except ModelLoadError:
        raise
    except EngineError:
        if not isolate:
            raise
    # One bad request costs about one failed run per halving; more failures than that mean the
    # engine fails on anything, and the whole chunk is retried (or failed) as one.
    budget = [2 * math.ceil(math.log2(len(rows))) + 2 if len(rows) > 1 else 0]
    return _bisect(spec, endpoint, rows, budget)


def _bisect(spec, endpoint: str, rows: list[Pending], budget: list[int]) -> list[EngineResult]:
    mid = len(rows) // 2
    results: list[EngineResult] = []
    for half in (rows[:mid], rows[mid:]):
        try:
            results += get_engine().run(
                spec, [EngineRequest(r.custom_id, endpoint, r.body) for r in half]
            )
            continue
        except ModelLoadError:
            raise
        except EngineError as exc:
            budget[0] -= 1
            if budget[0] < 0:
                raise EngineError(f"engine fails on every part of the chunk: {exc}") from exc
            if len(half) == 1:
                logger.error("request %s crashes the engine; isolated: %s", half[0].custom_id, exc)
                results.append(
                    _error(500, "engine_crash", f"This request crashed the engine: {exc}")
                )
                continue
        results += _bisect(spec, endpoint, half, budget)
    return results


def _error(status_code: int, code: str, message: str) -> EngineResult:
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": code}}
    return EngineResult(status_code, body)


def _after_load_failure(chunk: BatchChunk, message: str) -> None:
    """Back off and retry the load a few times, then fail the batch with a clear error."""
    Batch.objects.filter(pk=chunk.batch_id).update(load_failures=F("load_failures") + 1)
    batch = Batch.objects.get(pk=chunk.batch_id)
    if batch.load_failures >= Batch.MAX_LOAD_ATTEMPTS:
        try:
            lifecycle.fail_batch(
                batch, "model_load_failed", f"Model {batch.model!r} failed to load: {message}"
            )
        except OSError as exc:  # its files cannot be written now: the next tick finishes it
            logger.error("batch %s: could not write its files, will retry: %s", batch.id, exc)
        return
    initial = settings.BATCH_LOAD_BACKOFF_SECONDS
    delay = backoff_delay(
        batch.load_failures, initial=initial, maximum=initial * 60, jitter=initial / 2
    )
    chunk.back_off(timezone.now() + timedelta(seconds=delay))
    batch.set_note(f"model load attempt {batch.load_failures} failed: {message}")


def _retry_or_fail(chunk: BatchChunk, rows: list[Pending], code: str, message: str) -> None:
    if chunk.attempts < Batch.MAX_CHUNK_ATTEMPTS:
        chunk.release()
        chunk.batch.set_note(
            f"chunk {chunk.index} attempt {chunk.attempts} failed ({code}): {message}"
        )
        return
    _fail_rows(chunk, rows, code, message)


def _fail_rows(chunk: BatchChunk, rows: list[Pending], code: str, message: str) -> None:
    """Give up on these rows: each becomes an error line with ``code``."""
    record_results(chunk, rows, [_error(500, code, message) for _ in rows])


@db_retry("writing a chunk's results", lifecycle.note_db_recovery)
def record_results(chunk: BatchChunk, rows: list[Pending], results: list[EngineResult]) -> int:
    """Write results for rows still pending, in one transaction; returns how many were written.

    Rows a cancel, an expiry or another worker settled first are skipped: that is what keeps
    every custom_id exactly once however often a chunk runs.
    """
    if len(results) != len(rows):
        raise EngineError(f"engine returned {len(results)} results for {len(rows)} requests")
    now = timezone.now()
    # Random ids for all rows from one read of the OS's random source (one call per id was
    # 6% of the worker's time); 24 hex digits each, as new_id makes them.
    hexes = os.urandom(24 * len(rows)).hex()
    values = [
        _result_values(row.id, result, hexes[48 * i : 48 * i + 48])
        for i, (row, result) in enumerate(zip(rows, results, strict=True))
    ]
    write = _write_pg if connection.vendor == "postgresql" else _write_portable
    with transaction.atomic():
        written = write(values, now)
        chunk.mark_done()
        completed = sum(1 for status, _, _ in written if status == R.COMPLETED)
        Batch.objects.filter(pk=chunk.batch_id).update(
            request_completed=F("request_completed") + completed,
            request_failed=F("request_failed") + len(written) - completed,
            input_tokens=F("input_tokens") + sum(w[1] for w in written),
            output_tokens=F("output_tokens") + sum(w[2] for w in written),
        )
        batch_id = chunk.batch_id
        transaction.on_commit(
            lambda: signals.batch_chunk_committed.send(
                sender=BatchChunk,
                batch_id=batch_id,
                completed=completed,
                failed=len(written) - completed,
            )
        )
    return len(written)


# The columns a result sets, with their types in the JSON document that carries them
# (finished_at is set apart). The answer travels as a JSON value, not as a string holding JSON:
# encoded once, and the json type keeps its text byte for byte.
RESULT_COLUMNS = {
    "id": "bigint",
    "status": "text",
    "public_id": "text",
    "request_id": "text",
    "response_status": "int",
    "response_body": "json",
    "input_tokens": "int",
    "output_tokens": "int",
    "latency_ms": "int",
}


def _result_values(row_id: int, result: EngineResult, random_hex: str) -> dict:
    return {
        "id": row_id,
        "status": R.COMPLETED if result.ok else R.FAILED,
        "public_id": f"batch_req_{random_hex[:24]}",
        "request_id": f"req_{random_hex[24:]}",
        "response_status": result.status_code,
        "response_body": result.body,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "latency_ms": result.latency_ms,
    }


Written = list[tuple[str, int, int]]  # (status, input tokens, output tokens) of each row written


def _write_pg(values: list[dict], now) -> Written:
    """One UPDATE for the whole chunk, only where the row is still pending.

    The values travel as one JSON document (``json_to_recordset``): quoting one string is far
    cheaper than quoting eight arrays element by element. Under READ COMMITTED a row that a
    cancel or another worker updates meanwhile is checked again once that transaction ends, so
    it is skipped rather than written twice.
    """
    columns = dict(RESULT_COLUMNS)
    try:
        # ensure_ascii=False: the answer's text is stored exactly as json.dumps(body,
        # ensure_ascii=False) writes it (the nested value is encoded the same way).
        document = json.dumps(values, ensure_ascii=False, allow_nan=False)
    except ValueError:
        # NaN or Infinity in an answer: not JSON that PostgreSQL's json type accepts, so this
        # chunk's answers travel as strings holding their text, as json.dumps writes it.
        columns["response_body"] = "text"
        for value in values:
            value["response_body"] = json.dumps(value["response_body"], ensure_ascii=False)
        document = json.dumps(values, ensure_ascii=False)
    table = BatchRequest._meta.db_table
    record = ", ".join(f"{c} {t}" for c, t in columns.items())
    assignments = ", ".join(
        f"{c} = v.{c}::text" if t == "json" else f"{c} = v.{c}"
        for c, t in list(columns.items())[1:]
    )
    sql = (
        f"UPDATE {table} AS r SET {assignments}, finished_at = %s "
        f"FROM json_to_recordset(%s::json) AS v({record}) "
        f"WHERE r.id = v.id AND r.status = %s "
        f"RETURNING r.status, r.input_tokens, r.output_tokens"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, document, R.PENDING])
        return cursor.fetchall()


def _write_portable(values: list[dict], now) -> Written:
    """The same through the ORM, for databases other than PostgreSQL (slower: one CASE per row)."""
    pending = set(
        BatchRequest.objects.select_for_update()
        .filter(id__in=[v["id"] for v in values], status=R.PENDING)
        .values_list("id", flat=True)
    )
    rows = [
        BatchRequest(
            **{**v, "response_body": json.dumps(v["response_body"], ensure_ascii=False)},
            finished_at=now,
        )
        for v in values
        if v["id"] in pending
    ]
    fields = [*list(RESULT_COLUMNS)[1:], "finished_at"]
    BatchRequest.objects.bulk_update(rows, fields, batch_size=500)
    return [(r.status, r.input_tokens, r.output_tokens) for r in rows]


class BatchChunkWork(kinds.WorkKind):
    """Batch chunks as a kind of GPU work: claimed by priority, a loaded model, then age."""

    name = "batch"
    exclusive = False

    def peek(self, worker_id: str, loaded_model: str | None) -> kinds.Candidate | None:
        head = (
            BatchChunk.objects.runnable(also_leased_to=worker_id)
            .in_claim_order(loaded_model)
            .values_list("batch__priority", "batch__created_at", "batch__model")
            .first()
        )
        if head is None:
            return None
        priority, created_at, model = head
        return kinds.Candidate(self.name, priority, created_at, model)

    def claim(self, worker_id: str, loaded_model: str | None) -> kinds.Unit | None:
        chunk = claim_chunk(worker_id, loaded_model)
        if chunk is None:
            return None
        return kinds.Unit(
            kind=self.name,
            id=f"{chunk.batch_id}#{chunk.index}",
            model=chunk.batch.model,
            correlation_id=chunk.batch.correlation_id,
            label=f"{chunk.batch_id} chunk {chunk.index}",
            batch_id=chunk.batch_id,
            chunk=chunk.index,
            payload=chunk,
        )

    def run(self, unit: kinds.Unit, work: kinds.Slice) -> kinds.Outcome:
        chunk: BatchChunk = unit.payload
        warm = work.engine.loaded_model == chunk.batch.model
        written, tokens = run_chunk(chunk)
        logger.info(
            "batch %s chunk %d: %d requests, %d output tokens",
            chunk.batch_id,
            chunk.index,
            written,
            tokens,
            extra={"batch_id": chunk.batch_id, "chunk": chunk.index},
        )
        return kinds.Outcome(items=written, output_tokens=tokens, warm=warm)

    def warm_model(self, worker_id: str) -> ModelSpec | None:
        name = warm_model_name(worker_id)
        model = find_active_model(name) if name else None
        return model_spec(model) if model is not None else None

    def after_unit(self, unit: kinds.Unit, outcome: kinds.Outcome) -> None:
        if outcome.warm:  # a chunk that loaded the model first would understate its speed
            record_throughput(unit.model, outcome.output_tokens, outcome.seconds)
        lifecycle.settle_by_id(unit.batch_id)

    def extend_leases(self, worker_id: str, until: datetime) -> int:
        return BatchChunk.objects.extend_leases(worker_id, until)

    def release(self, unit: kinds.Unit) -> None:
        unit.payload.release()

    def requeue_orphans(self, gone_worker_ids: list[str]) -> int:
        return BatchChunk.objects.orphaned(gone_worker_ids).requeue()

    def has_work(self) -> bool:
        return BatchChunk.objects.runnable().exists()

    def queue_items(self) -> list[kinds.QueueItem]:
        return selectors.batch_queue_items()

    def tick(self) -> None:
        lifecycle.tick()
