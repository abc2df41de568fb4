"""The worker-side life of a batch: validate and split it, then settle it when it ends.

Each function re-reads the batch and does nothing if it has moved on, so a task delivered twice
(or racing another worker) is harmless.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from batchserver import correlation, fastjson, live
from batchserver.db.retry import db_retry
from batchserver.errors import Invalid
from batchserver.models import ApiKey
from jobs.assembly import close_out
from jobs.models import Batch, BatchChunk, BatchRequest, File
from jobs.validation import LineError, ParsedLine, check_lines
from models_registry.services import find_active_model, find_offered_model
from plugins import services as plugin_services

logger = logging.getLogger(__name__)
S = Batch.Status
INSERT_BATCH = 2000
MAX_REPORTED_ERRORS = 1000


class _Abort(Exception):
    """Rolls the inserted rows back: the file is invalid, or the batch moved on meanwhile."""


def note_db_recovery(args: tuple[Any, ...], result: Any, text: str) -> None:
    """db_retry's ``on_recovered``: tell the batch's operators about the database outage."""
    for value in (result, *args):
        batch_id = None
        if isinstance(value, Batch):
            batch_id = value.pk
        elif isinstance(value, BatchChunk):
            batch_id = value.batch_id
        elif isinstance(value, str) and value.startswith("batch_"):
            batch_id = value
        if batch_id:
            Batch.objects.filter(pk=batch_id).update(note=text)
            return


def model_error(name: str, endpoint: str, *, operator: bool = False) -> tuple[str, str] | None:
    """(code, message) when the registry cannot serve ``name`` on ``endpoint``.

    Clients get only the models the registry offers; operator work (the console key's batches,
    e.g. a model test) may name any active model, also one that failed its last test.
    """
    model = find_active_model(name) if operator else find_offered_model(name)
    if model is None:
        if not operator and find_active_model(name) is not None:
            return "model_not_available", (
                f"model {name!r} failed its last test and is not offered until it passes."
            )
        return "model_not_found", f"model {name!r} is not available on this server."
    if endpoint not in model.endpoints:
        return "unsupported_model_endpoint", f"model {name!r} does not serve {endpoint}."
    return None


def _check(batch: Batch, before_query: Callable[[], None]):
    """The input's lines, checked; ``before_query`` runs before each registry lookup (the
    lookups share the connection that may be busy with a COPY of the rows before)."""
    try:
        content = batch.input_file.content
    except File.DoesNotExist:  # the client deleted the input file before the worker read it
        raise FileNotFoundError(batch.input_file_id) from None
    handle = content.open("rb")
    operator = ApiKey.objects.filter(pk=batch.owner_id, internal=True).exists()

    def lookup(name: str, endpoint: str) -> tuple[str, str] | None:
        before_query()
        return model_error(name, endpoint, operator=operator)

    return handle, check_lines(
        handle,
        batch.endpoint,
        lookup,
        max_lines=live.get("BATCH_MAX_LINES"),
        allow_mixed_models=settings.BATCH_ALLOW_MIXED_MODELS,
    )


class Row(NamedTuple):
    """A valid line as it will be stored: its body after the batch's schema plugins, or the
    error a plugin gave it (that line alone then goes to the error file)."""

    line: int
    custom_id: str
    body: dict[str, Any]
    error: dict[str, str] | None = None


@dataclass
class Inserted:
    count: int = 0
    failed: int = 0
    model: str = ""
    errors: list[LineError] = field(default_factory=list)


def _row(item: ParsedLine, plan: plugin_services.SchemaPlan | None) -> Row:
    if plan is None:
        return Row(item.line, item.custom_id, item.body)
    try:
        body = plan.transform(item.body, custom_id=item.custom_id, line=item.line)
    except plugin_services.LineFailed as exc:
        return Row(item.line, item.custom_id, item.body, exc.as_error())
    return Row(item.line, item.custom_id, body)


def _insert_rows(batch: Batch, items, plan, stream: RowStream | None) -> Inserted:
    """Insert one row per valid line; keep scanning (without inserting) once a line is bad."""
    done = Inserted()
    buffer: list[Row] = []
    size = live.get("BATCH_CHUNK_SIZE")
    if stream is not None:

        def write(batch: Batch, rows: list[Row], first: int, size: int) -> None:
            stream.write(_copy_block(batch, rows, first, size))

    else:
        write = _copy_rows if connection.vendor == "postgresql" else _create_rows
    for item in items:
        if isinstance(item, LineError):
            if len(done.errors) < MAX_REPORTED_ERRORS:
                done.errors.append(item)
            continue
        if done.errors:
            continue
        done.model = done.model or item.body["model"]
        row = _row(item, plan)
        done.failed += row.error is not None
        buffer.append(row)
        done.count += 1
        if len(buffer) >= INSERT_BATCH:
            write(batch, buffer, done.count - len(buffer), size)
            buffer.clear()
    if buffer and not done.errors:
        write(batch, buffer, done.count - len(buffer), size)
    return done


_COPY_COLUMNS = (
    "batch_id, line, custom_id, chunk, body, status, error, public_id, request_id, "
    "response_body, input_tokens, output_tokens"
)


# COPY's text format: a backslash, a tab, a newline or a carriage return inside a value is
# written as an escape (nothing else needs one; validation already refused NUL characters).
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    # Most values need no escape: four searches are cheaper than one translate (24 against
    # 1.3 microseconds for a 4 kB body).
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


_COPY_SQL = f"COPY {BatchRequest._meta.db_table} ({_COPY_COLUMNS}) FROM STDIN"


def _copy_block(batch: Batch, rows: list[Row], first: int, size: int) -> str:
    """The rows as COPY text, in one piece: psycopg's ``write_row`` formats field by field in
    Python, a seventh of a 200 MB file's validation. A row a schema plugin failed is stored
    ``failed`` with its error (``\\N``: NULL for the others)."""
    pending = f"\t{BatchRequest.Status.PENDING}\t\\N\t\t\t\t0\t0\n"  # status … output_tokens
    lines = []
    for n, row in enumerate(rows, start=first):
        custom_id = _copy_text(row.custom_id)
        body = _copy_text(fastjson.dumps(row.body))  # compact: just the request
        if row.error is None:
            tail = pending
        else:
            error = _copy_text(fastjson.dumps(row.error))
            tail = f"\t{BatchRequest.Status.FAILED}\t{error}\t\t\t\t0\t0\n"
        lines.append(f"{batch.pk}\t{row.line}\t{custom_id}\t{n // size}\t{body}{tail}")
    return "".join(lines)


def _copy_rows(batch: Batch, rows: list[Row], first: int, size: int) -> None:
    """PostgreSQL: COPY the rows in, with no per-row model instance or parameter quoting."""
    with connection.cursor() as cursor:
        with cursor.copy(_COPY_SQL) as copy:
            copy.write(_copy_block(batch, rows, first, size))


def _no_query_while_streaming(*_: Any) -> None:
    raise RuntimeError("a query while rows stream into a COPY: call RowStream.pause() first")


class RowStream:
    """PostgreSQL: one COPY of the rows that a thread feeds while the caller parses the next block.

    Parsing a block (this process's CPU) and storing the one before (PostgreSQL's) overlap
    instead of taking turns: for a 200 MB file they cost about the same, 1.5 s each. The
    thread only writes to the COPY already open on this connection; at most one block waits for
    it, so memory stays flat. The connection carries nothing else while the COPY is open:
    ``pause()`` ends it (waiting for what is queued), and the next ``write()`` opens another;
    leaving the ``with`` block ends it too, abandoned (PostgreSQL discards it) on an exception.
    An error of the COPY is raised in the caller, at its next ``write()`` or ``pause()``.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=1)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._cursor: Any = None
        self._copy_context: Any = None
        self._guard: Any = None

    def write(self, text: str) -> None:
        self._raise_error()
        if self._thread is None:
            self._open()
        self._queue.put(text)

    def pause(self) -> None:
        """End the COPY (all that was written is stored), leaving the connection free."""
        self._end(None)

    def __enter__(self) -> RowStream:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._end(exc)

    def _open(self) -> None:
        # A query from this thread while the COPY holds the connection would wait for it
        # forever: refuse it instead, naming the fix.
        self._guard = connection.execute_wrapper(_no_query_while_streaming)
        self._guard.__enter__()
        self._cursor = connection.cursor()
        self._copy_context = self._cursor.copy(_COPY_SQL)
        copy = self._copy_context.__enter__()

        def feed() -> None:
            try:
                while (text := self._queue.get()) is not None:
                    copy.write(text)
            except BaseException as exc:  # raised again in the caller's thread
                self._error = exc
                while self._queue.get() is not None:  # unblock the caller's put()
                    pass

        self._thread = threading.Thread(target=feed, name="copy-rows", daemon=True)
        self._thread.start()

    def _end(self, exc: BaseException | None) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        failure = exc or self._error
        try:
            self._copy_context.__exit__(
                type(failure) if failure else None,
                failure,
                failure.__traceback__ if failure else None,
            )
        finally:
            self._cursor.close()
            self._copy_context = self._cursor = None
            self._guard.__exit__(None, None, None)
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def _create_rows(batch: Batch, rows: list[Row], first: int, size: int) -> None:
    BatchRequest.objects.bulk_create(
        BatchRequest(
            batch=batch,
            line=row.line,
            custom_id=row.custom_id,
            chunk=n // size,
            body=fastjson.dumps(row.body),
            status=BatchRequest.Status.PENDING if row.error is None else BatchRequest.Status.FAILED,
            error=row.error,
        )
        for n, row in enumerate(rows, start=first)
    )


def validate_and_split(batch: Batch) -> None:
    """Check every line; either fail the batch with its errors or start it with its rows."""
    if batch.status != S.VALIDATING:
        return
    errors: list[LineError] = []
    try:
        with transaction.atomic():
            plan = plugin_services.schema_plan(batch.id, batch.metadata, batch.endpoint)
            # Rows stream in while the file is read, unless a schema plugin may query the
            # database per line (the stream then could not pause for it).
            stream = RowStream() if connection.vendor == "postgresql" and plan is None else None
            handle, items = _check(batch, stream.pause if stream else lambda: None)
            with handle, stream or contextlib.nullcontext():
                done = _insert_rows(batch, items, plan, stream)
            if plan is not None:
                plan.close()
            errors = done.errors
            if errors:
                raise _Abort
            size = live.get("BATCH_CHUNK_SIZE")
            BatchChunk.objects.bulk_create(
                BatchChunk(batch=batch, index=i, size=min(size, done.count - i * size))
                for i in range(math.ceil(done.count / size))
            )
            moved = batch.transition(
                S.IN_PROGRESS,
                request_total=done.count,
                request_failed=done.failed,
                model=done.model,
            )
            if not moved:
                raise _Abort
    except _Abort:
        pass
    except Invalid as exc:  # the batch names a schema plugin that is not enabled
        errors = [LineError(exc.code, None, exc.message, exc.param)]
    except IntegrityError:
        logger.info("batch %s is being validated by another delivery", batch.id)
        return
    except FileNotFoundError:
        errors = [
            LineError(
                "file_not_found", None, "The input file's content is missing.", "input_file_id"
            )
        ]
    batch.refresh_from_db()
    if batch.status == S.VALIDATING and errors:
        batch.transition(S.FAILED, errors=[e.as_dict() for e in errors])
    elif batch.status == S.CANCELLING:
        settle(batch)


def settle(batch: Batch, finalize_grace: float | None = None) -> None:
    """Bring a batch that can end to its end: cancelled, expired or completed.

    A batch finalizing for longer than ``finalize_grace`` seconds (``Batch.
    FINALIZE_GRACE_SECONDS`` by default; the operator's reset passes a shorter one) lost its
    worker mid-assembly and is assembled again. If its files cannot be written (disk full), it
    stays where it is (with a note saying why) and the next tick tries again.
    """
    batch.refresh_from_db()
    try:
        _settle(batch, finalize_grace)
    except OSError as exc:
        logger.error("batch %s: could not write its files, will retry: %s", batch.id, exc)
        batch.set_note(f"{Batch.FINALIZE_FAILED_NOTE}: {exc}")


@db_retry("settling a batch", note_db_recovery)
def settle_by_id(batch_id: str) -> None:
    """``settle`` for a batch named by id, riding out a lost database connection."""
    batch = Batch.objects.filter(pk=batch_id).first()
    if batch is not None:
        with correlation.bind(batch.correlation_id):
            settle(batch)


def tick() -> None:
    """Periodic safety net: expire, settle and validate whatever no task is carrying."""
    for batch in Batch.objects.past_window():
        settle(batch)
    for batch in Batch.objects.filter(status__in=(S.CANCELLING, S.FINALIZING)):
        settle(batch)
    for batch in Batch.objects.filter(status=S.VALIDATING):
        validate_and_split(batch)
    for batch in Batch.objects.filter(status=S.IN_PROGRESS).exclude(
        chunks__status__in=("pending", "leased")
    ):
        settle(batch)


def _settle(batch: Batch, finalize_grace: float | None) -> None:
    if batch.status == S.CANCELLING:
        close_out(batch, S.CANCELLED, unfinished=BatchRequest.Status.CANCELLED)
    elif batch.status in (S.VALIDATING, S.IN_PROGRESS) and batch.expires_at <= timezone.now():
        close_out(batch, S.EXPIRED, unfinished=BatchRequest.Status.EXPIRED)
    elif batch.status == S.IN_PROGRESS and not batch.chunks.exclude(status="done").exists():
        if batch.load_failures >= Batch.MAX_LOAD_ATTEMPTS:
            # Failing it for its model could not write the files (disk full): finish failing.
            first = batch.requests.filter(error__code="model_load_failed").first()
            message = (
                first.error["message"]
                if first and first.error
                else f"Model {batch.model!r} did not load."
            )
            fail_batch(batch, "model_load_failed", message)
        elif batch.transition(S.FINALIZING):
            close_out(batch, S.COMPLETED)
    elif batch.stuck_finalizing(finalize_grace):
        # The last attempt failed, or its worker died.
        if close_out(batch, S.COMPLETED) and batch.note.startswith(Batch.FINALIZE_FAILED_NOTE):
            batch.set_note(f"written on a retry; {batch.note}")


def fail_batch(batch: Batch, code: str, message: str) -> bool:
    """End a running batch that cannot run at all (its model will not load).

    Lines already finished keep their results; the rest go to the error file with ``code``.
    """
    error = {"code": code, "message": message}
    BatchRequest.objects.filter(batch=batch, status=BatchRequest.Status.PENDING).update(
        status=BatchRequest.Status.FAILED, error=error
    )
    errors = [{**error, "line": None, "param": None}]
    return close_out(batch, S.FAILED, extra={"errors": errors})
