"""Recovery: requeue work whose worker is gone, settle stuck batches, ride out database blips.

Two halves. ``reset_stuck_jobs`` is the operator's lever (``manage.py reset_stuck_jobs``,
``POST /admin/reset-stuck-jobs``): what the periodic tick does slowly and cautiously, done now,
with counts. ``db_retry`` wraps the worker's own database steps, so a connection lost in the
middle of a chunk costs a few seconds of back-off instead of the chunk's work.

Neither can lose or duplicate a line: a requeued chunk whose worker turns out to be alive only
runs twice, and results are written only for rows still pending (``runner.record_results``).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import tenacity
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.models import Q
from django.utils import timezone

from jobs.assembly import close_out
from jobs.models import Batch, BatchChunk, Worker
from jobs.services import lifecycle

logger = logging.getLogger(__name__)
S = Batch.Status
C = BatchChunk.Status

# A batch finalizing for longer than this is taken as stuck by the operator's command; the
# periodic tick waits lifecycle.FINALIZE_STALE_SECONDS instead.
FINALIZING_GRACE_SECONDS = 60.0

# The worker's database steps: 8 attempts, waits 0.5 s doubling to at most 10 s, plus up to 1 s
# of jitter so that workers that lost the database together do not return in lockstep: about
# 40 s in all, longer than a PostgreSQL restart and shorter than the default 60 s lease.
DB_ERRORS = (OperationalError, InterfaceError)
DB_RETRY_ATTEMPTS = 8
DB_RETRY_FIRST_WAIT = 0.5
DB_RETRY_MAX_WAIT = 10.0
DB_RETRY_JITTER = 1.0

T = TypeVar("T")


@dataclass
class RecoveryReport:
    """What ``reset_stuck_jobs`` did."""

    workers_gone: int = 0
    chunks_requeued: int = 0
    batches_finalized: int = 0
    batches_settled: int = 0
    failed: list[str] = field(default_factory=list)
    work_enqueued: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        text = (
            f"{self.chunks_requeued} chunk(s) requeued ({self.workers_gone} worker(s) gone), "
            f"{self.batches_finalized} stuck finalizing batch(es) finalized, "
            f"{self.batches_settled} other batch(es) settled"
        )
        if self.failed:
            text += f"; could not settle {', '.join(self.failed)} (see the log)"
        return text + ("; work resumed." if self.work_enqueued else ".")


def gone_worker_ids() -> list[str]:
    """Workers whose heartbeat is stale, or that said they stopped."""
    return list(
        Worker.objects.filter(
            Q(pk__in=Worker.objects.gone()) | Q(state=Worker.State.STOPPED)
        ).values_list("worker_id", flat=True)
    )


def requeue_orphaned_chunks(now=None) -> tuple[int, int]:
    """Make chunks leased to a gone worker, or whose lease ran out, claimable now.

    Returns (chunks requeued, distinct gone workers that held some). One UPDATE, conditional on
    the chunk still being leased: a worker that commits the chunk first wins.
    """
    now = now or timezone.now()
    gone = gone_worker_ids()
    orphaned = BatchChunk.objects.filter(status=C.LEASED).filter(
        Q(worker_id__in=gone) | Q(leased_until__lt=now) | Q(leased_until__isnull=True)
    )
    holders = set(orphaned.filter(worker_id__in=gone).values_list("worker_id", flat=True))
    requeued = orphaned.update(status=C.PENDING, worker_id="", leased_until=None)
    return requeued, len(holders)


def _settle_one(batch: Batch, report: RecoveryReport, finalizing_cutoff) -> None:
    if batch.status == S.FINALIZING:
        if batch.finalizing_at and batch.finalizing_at > finalizing_cutoff:
            return  # a worker may still be assembling it
        if close_out(batch, S.COMPLETED):
            report.batches_finalized += 1
        return
    lifecycle.settle(batch)
    batch.refresh_from_db()
    if batch.is_terminal or batch.status == S.FINALIZING:
        report.batches_settled += 1


def reset_stuck_jobs(finalizing_grace: float = FINALIZING_GRACE_SECONDS) -> RecoveryReport:
    """Requeue orphaned chunks, settle batches nothing is carrying, and restart the work."""
    from django_q.tasks import async_task

    from jobs.runner import runnable_chunks

    report = RecoveryReport()
    report.chunks_requeued, report.workers_gone = requeue_orphaned_chunks()
    cutoff = timezone.now() - timedelta(seconds=finalizing_grace)
    stuck = Batch.objects.filter(
        Q(status__in=(S.FINALIZING, S.CANCELLING))
        | Q(status=S.IN_PROGRESS, paused=False) & ~Q(chunks__status__in=(C.PENDING, C.LEASED))
    ).distinct()
    for batch in stuck:
        try:
            _settle_one(batch, report, cutoff)
        except Exception:  # one batch that cannot be settled must not stop the others
            logger.exception("reset_stuck_jobs: could not settle batch %s", batch.id)
            report.failed.append(batch.id)
    if runnable_chunks().exists():
        transaction.on_commit(lambda: async_task("jobs.tasks.run_work"))
        report.work_enqueued = True
    logger.info("reset_stuck_jobs: %s", report.summary())
    return report


# --- Riding out a lost database connection in the worker ------------------------------------


def _batch_id_of(values: tuple[Any, ...]) -> str | None:
    for value in values:
        if isinstance(value, str) and value.startswith("batch_"):
            return value
        if isinstance(value, Batch):
            return value.pk
        if isinstance(getattr(value, "batch_id", None), str):
            return value.batch_id
    return None


def _note(batch_id: str | None, text: str) -> None:
    if batch_id is None:
        return
    try:
        Batch.objects.filter(pk=batch_id).update(note=text)
    except DB_ERRORS as exc:
        logger.warning("could not note the database outage on %s: %s", batch_id, exc)


def db_retry(what: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Retry a worker's database step through a lost connection.

    Exponential back-off with jitter (tenacity), bounded by ``DB_RETRY_ATTEMPTS``; stale
    connections are closed between attempts so the next one reconnects; each retry is logged,
    and once the step succeeds the batch it concerned gets a note saying what happened. Inside
    an atomic block nothing is retried: the transaction is lost with the connection, and only
    whoever opened it can start it again.
    """

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            if connection.in_atomic_block:
                return fn(*args, **kwargs)
            failures: list[str] = []
            started = time.monotonic()

            def before_sleep(state: tenacity.RetryCallState) -> None:
                exc = state.outcome.exception() if state.outcome else None
                failures.append(str(exc).strip().splitlines()[0] if exc else "?")
                wait = state.next_action.sleep if state.next_action else 0.0
                logger.warning(
                    "database unavailable while %s (attempt %d of %d): %s; retrying in %.1fs",
                    what,
                    state.attempt_number,
                    DB_RETRY_ATTEMPTS,
                    failures[-1],
                    wait,
                )
                close_old_connections()

            retrying = tenacity.Retrying(
                retry=tenacity.retry_if_exception_type(DB_ERRORS),
                wait=tenacity.wait_exponential(
                    multiplier=DB_RETRY_FIRST_WAIT, max=DB_RETRY_MAX_WAIT
                )
                + tenacity.wait_random(0, DB_RETRY_JITTER),
                stop=tenacity.stop_after_attempt(DB_RETRY_ATTEMPTS),
                before_sleep=before_sleep,
                reraise=True,
            )
            try:
                result = retrying(fn, *args, **kwargs)
            except DB_ERRORS:
                logger.error(
                    "database unavailable while %s: gave up after %d attempts",
                    what,
                    DB_RETRY_ATTEMPTS,
                )
                raise
            if failures:
                seconds = time.monotonic() - started
                _note(
                    _batch_id_of((result, *args)),
                    f"{timezone.now():%Y-%m-%d %H:%M:%S} UTC: the database connection was lost "
                    f"while {what}; recovered after {len(failures)} retr"
                    f"{'y' if len(failures) == 1 else 'ies'} in {seconds:.1f}s "
                    f"(first error: {failures[0]})",
                )
            return result

        return wrapper

    return decorate
