"""reset_stuck_jobs (command and the Workers page's form) and the worker's database retries."""

from __future__ import annotations

import io
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from batchserver.db import retry
from jobs import runner
from jobs.models import Batch, BatchChunk, BatchRequest, Worker
from jobs.services import lifecycle, recovery
from tests.conftest import csrf_token

URL = "/workers/reset-stuck"


@pytest.fixture
def running_batch(validated_batch):
    """A validated batch of 6 lines in 3 chunks, nothing run yet."""
    batch = validated_batch(6, chunk_size=2)
    assert batch.chunks.count() == 3
    return batch


def _worker(worker_id: str, seconds_ago: float) -> Worker:
    return Worker.objects.create(
        worker_id=worker_id,
        hostname="h",
        pid=1,
        last_heartbeat=timezone.now() - timedelta(seconds=seconds_ago),
    )


def _lease(batch: Batch, index: int, worker_id: str, seconds_left: float) -> None:
    BatchChunk.objects.filter(batch=batch, index=index).update(
        status="leased",
        worker_id=worker_id,
        leased_until=timezone.now() + timedelta(seconds=seconds_left),
        attempts=1,
    )


def _status(batch: Batch) -> dict[int, tuple[str, str]]:
    return {c.index: (c.status, c.worker_id) for c in batch.chunks.order_by("index")}


def test_command_requeues_chunks_of_gone_workers_and_expired_leases(running_batch):
    # given a chunk held by a dead worker (lease still running), one whose lease ran out,
    # and one held by a live worker
    _worker("dead:1", seconds_ago=3600)
    _worker("alive:2", seconds_ago=0)
    _lease(running_batch, 0, "dead:1", seconds_left=50)
    _lease(running_batch, 1, "vanished:3", seconds_left=-5)
    _lease(running_batch, 2, "alive:2", seconds_left=50)

    # when the operator runs the command
    out = io.StringIO()
    call_command("reset_stuck_jobs", stdout=out)

    # then the first two are claimable again at once, the live worker keeps its chunk
    assert _status(running_batch) == {
        0: ("pending", ""),
        1: ("pending", ""),
        2: ("leased", "alive:2"),
    }
    assert "2 chunk(s) requeued (1 worker(s) gone)" in out.getvalue()
    assert "work resumed" in out.getvalue()


def test_command_finishes_a_batch_stuck_in_finalizing(running_batch):
    # given a batch whose rows are all answered but whose worker died while finalizing
    BatchRequest.objects.filter(batch=running_batch).update(
        status="completed", response_status=200, response_body="{}"
    )
    running_batch.chunks.update(status="done")
    Batch.objects.filter(pk=running_batch.pk).update(
        status="finalizing", finalizing_at=timezone.now() - timedelta(minutes=5)
    )

    # when the operator runs the command
    out = io.StringIO()
    call_command("reset_stuck_jobs", stdout=out)

    # then it is completed with its output file
    running_batch.refresh_from_db()
    assert running_batch.status == "completed"
    assert running_batch.output_file.line_count == 6
    assert "1 stuck finalizing batch(es) finalized" in out.getvalue()


def test_command_leaves_a_batch_finalizing_right_now_alone(running_batch):
    running_batch.chunks.update(status="done")
    Batch.objects.filter(pk=running_batch.pk).update(
        status="finalizing", finalizing_at=timezone.now()
    )
    report = recovery.reset_stuck_jobs()
    running_batch.refresh_from_db()
    assert running_batch.status == "finalizing"
    assert report.batches_finalized == 0


def test_command_settles_a_batch_whose_worker_died_after_its_last_chunk(running_batch):
    BatchRequest.objects.filter(batch=running_batch).update(
        status="completed", response_status=200, response_body="{}"
    )
    running_batch.chunks.update(status="done")
    report = recovery.reset_stuck_jobs()
    running_batch.refresh_from_db()
    assert running_batch.status == "completed"
    assert report.batches_settled == 1 and report.chunks_requeued == 0


# --- the staff-only form on the Workers page ----------------------------------------------------


def test_the_form_redirects_anonymous_users_to_the_login(db):
    response = Client().post(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_form_refuses_users_who_are_not_staff(db):
    user = User.objects.create_user("someone", password="pw-someone-123")
    client = Client()
    client.force_login(user)
    response = client.post(URL)
    assert response.status_code in (302, 403)
    if response.status_code == 302:
        assert response["Location"].startswith("/admin/login/")


def test_the_form_tells_staff_the_counts(staff_client, running_batch):
    _worker("dead:1", seconds_ago=3600)
    _lease(running_batch, 0, "dead:1", seconds_left=50)

    form = {"csrfmiddlewaretoken": csrf_token(staff_client)}
    response = staff_client.post(URL, form, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/workers"
    assert "Reset stuck work: 1 chunk(s) requeued (1 worker(s) gone)" in response.content.decode()
    assert _status(running_batch)[0] == ("pending", "")


def test_the_form_needs_post_and_a_csrf_token(staff_client):
    assert staff_client.get(URL).status_code == 405
    assert staff_client.post(URL).status_code == 403  # no CSRF token


# --- the worker's database retries ---------------------------------------------------------


@pytest.fixture
def as_in_the_worker(monkeypatch):
    """Short waits, and the worker's view of the connection: no transaction around the step.

    (pytest-django wraps each test in one, inside which nothing is retried, and where closing
    stale connections would close the test's own.)
    """
    monkeypatch.setattr(retry, "DB_RETRY_FIRST_WAIT", 0.001)
    monkeypatch.setattr(retry, "DB_RETRY_MAX_WAIT", 0.002)
    monkeypatch.setattr(retry, "DB_RETRY_JITTER", 0.001)
    monkeypatch.setattr(retry, "connection", SimpleNamespace(in_atomic_block=False))
    monkeypatch.setattr(retry, "close_old_connections", lambda: None)


def test_db_retry_rides_out_a_lost_connection_and_notes_it(running_batch, as_in_the_worker):
    # given a step that loses the database twice, then works
    calls = []

    @retry.db_retry("testing", lifecycle.note_db_recovery)
    def step(batch_id: str) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("server closed the connection unexpectedly")
        return "ok"

    # when it runs, then it succeeds on the third attempt
    assert step(running_batch.id) == "ok"
    assert len(calls) == 3
    # and the batch says what happened
    running_batch.refresh_from_db()
    assert "database connection was lost while testing" in running_batch.note
    assert "2 retries" in running_batch.note


def test_db_retry_gives_up_after_its_bound(db, as_in_the_worker):
    calls = []

    @retry.db_retry("testing")
    def step() -> None:
        calls.append(1)
        raise OperationalError("connection refused")

    with pytest.raises(OperationalError):
        step()
    assert len(calls) == retry.DB_RETRY_ATTEMPTS


def test_db_retry_does_not_retry_inside_a_transaction(db):
    calls = []

    @retry.db_retry("testing")
    def step() -> None:
        calls.append(1)
        raise OperationalError("connection refused")

    with pytest.raises(OperationalError):
        step()
    assert len(calls) == 1


def test_a_worker_takes_back_a_chunk_orphaned_by_its_own_dead_task(running_batch):
    # given a chunk this worker leased, whose task died (the heartbeat keeps its lease alive)
    first = runner.claim_chunk("me:1", None)
    # when the same worker claims again
    again = runner.claim_chunk("me:1", None)
    # then it gets that chunk back; another worker does not
    assert again.pk == first.pk and again.attempts == 2
    assert runner.claim_chunk("other:2", None).pk != first.pk


def test_a_chunk_backing_off_after_a_failed_load_is_not_taken_back_early(running_batch, settings):
    # given a chunk whose model failed to load, backing off for a minute
    settings.BATCH_LOAD_BACKOFF_SECONDS = 60
    first = runner.claim_chunk("me:1", None)
    runner._after_load_failure(first, "boom")
    # when the same worker claims again, then it gets another chunk: the back-off holds
    assert runner.claim_chunk("me:1", None).pk != first.pk
    # and neither the recovery command nor a heartbeat treats it as orphaned
    assert recovery.requeue_orphaned_chunks() == (0, 0)
    assert BatchChunk.objects.get(pk=first.pk).status == "leased"
