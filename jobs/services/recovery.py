"""Recovery, the operator's lever: requeue work whose worker is gone, settle stuck batches.

``reset_stuck_jobs`` (``manage.py reset_stuck_jobs``, the Workers page's form, the admin) does
now, with counts, what the periodic tick does slowly and cautiously. It cannot lose or duplicate
a line: a requeued chunk whose worker turns out to be alive only runs twice, and results are
written only for rows still pending (``runner.record_results``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q
from django_q.tasks import async_task

from jobs.models import Batch, BatchChunk, Worker
from jobs.services import lifecycle
from jobs.worker import kinds, loop

logger = logging.getLogger(__name__)
S = Batch.Status
C = BatchChunk.Status

# A batch finalizing for longer than this is taken as stuck by the operator's command; the
# periodic tick waits Batch.FINALIZE_GRACE_SECONDS instead.
FINALIZING_GRACE_SECONDS = 60.0


@dataclass
class RecoveryReport:
    """What ``reset_stuck_jobs`` did."""

    workers_gone: int = 0
    chunks_requeued: int = 0
    units_requeued: int = 0  # units of other kinds of GPU work (e.g. training jobs)
    batches_finalized: int = 0
    batches_settled: int = 0
    failed: list[str] = field(default_factory=list)
    work_enqueued: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        text = (
            f"{self.chunks_requeued} chunk(s) requeued ({self.workers_gone} worker(s) gone), "
            f"{self.units_requeued} other unit(s) of work requeued, "
            f"{self.batches_finalized} stuck finalizing batch(es) finalized, "
            f"{self.batches_settled} other batch(es) settled"
        )
        if self.failed:
            text += f"; could not settle {', '.join(self.failed)} (see the log)"
        return text + ("; work resumed." if self.work_enqueued else ".")


def gone_worker_ids() -> list[str]:
    """Workers whose heartbeat is stale, or that said they stopped."""
    return list(Worker.objects.gone().values_list("worker_id", flat=True))


def requeue_orphaned_chunks() -> tuple[int, int]:
    """Make chunks leased to a gone worker, or whose lease ran out, claimable now.

    Returns (chunks requeued, distinct gone workers that held some). One UPDATE, conditional on
    the chunk still being leased: a worker that commits the chunk first wins.
    """
    gone = gone_worker_ids()
    orphaned = BatchChunk.objects.orphaned(gone)
    holders = set(orphaned.filter(worker_id__in=gone).values_list("worker_id", flat=True))
    return orphaned.requeue(), len(holders)


def _requeue_other_kinds() -> int:
    gone = gone_worker_ids()
    return sum(k.requeue_orphans(gone) for k in kinds.registered() if k.name != "batch")


def _settle_one(batch: Batch, report: RecoveryReport, finalizing_grace: float) -> None:
    was_finalizing = batch.status == S.FINALIZING
    lifecycle.settle(batch, finalize_grace=finalizing_grace)
    batch.refresh_from_db()
    if was_finalizing and batch.is_terminal:
        report.batches_finalized += 1
    elif not was_finalizing and (batch.is_terminal or batch.status == S.FINALIZING):
        report.batches_settled += 1


def reset_stuck_jobs(finalizing_grace: float = FINALIZING_GRACE_SECONDS) -> RecoveryReport:
    """Requeue orphaned work, settle batches nothing is carrying, and restart the work."""
    report = RecoveryReport()
    report.chunks_requeued, report.workers_gone = requeue_orphaned_chunks()
    report.units_requeued = _requeue_other_kinds()
    stuck = Batch.objects.filter(
        Q(status__in=(S.FINALIZING, S.CANCELLING))
        | Q(status=S.IN_PROGRESS, paused=False) & ~Q(chunks__status__in=(C.PENDING, C.LEASED))
    ).distinct()
    for batch in stuck:
        try:
            _settle_one(batch, report, finalizing_grace)
        except Exception:  # one batch that cannot be settled must not stop the others
            logger.exception("reset_stuck_jobs: could not settle batch %s", batch.id)
            report.failed.append(batch.id)
    if loop.has_work():
        transaction.on_commit(lambda: async_task(loop.RUN_WORK_TASK))
        report.work_enqueued = True
    logger.info("reset_stuck_jobs: %s", report.summary())
    return report
