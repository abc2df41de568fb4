"""The batch state machine, cancel and expiry, and exactly-once results under re-delivery.

Tests that need a batch caught mid-way create it without running the on-commit callbacks (so no
worker starts), then drive the worker's tasks by hand.
"""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import runner, signals, tasks
from jobs.models import Batch, BatchChunk, BatchRequest, InvalidTransition
from jobs.services import batches as batch_services
from jobs.services import lifecycle
from jobs.worker.engine.base import EngineError, EngineResult
from jobs.worker.engine.fake import FakeBackend
from tests.conftest import jsonl, request_line

S = Batch.Status
ALLOWED = {
    (S.VALIDATING, S.IN_PROGRESS): "in_progress_at",
    (S.VALIDATING, S.FAILED): "failed_at",
    (S.VALIDATING, S.CANCELLING): "cancelling_at",
    (S.VALIDATING, S.EXPIRED): "expired_at",
    (S.IN_PROGRESS, S.FINALIZING): "finalizing_at",
    (S.IN_PROGRESS, S.CANCELLING): "cancelling_at",
    (S.IN_PROGRESS, S.EXPIRED): "expired_at",
    (S.IN_PROGRESS, S.FAILED): "failed_at",  # the batch's model cannot be loaded at all
    (S.FINALIZING, S.COMPLETED): "completed_at",
    (S.CANCELLING, S.CANCELLED): "cancelled_at",
}


@pytest.fixture
def new_batch(api_key, upload, model):
    """A batch in ``validating`` whose worker has not run (its on-commit enqueue never fires)."""

    def _new(count: int = 1) -> Batch:
        file = upload(jsonl([request_line(i) for i in range(1, count + 1)]))
        return batch_services.create_batch(
            api_key[0],
            input_file_id=file["id"],
            endpoint="/v1/chat/completions",
            completion_window="24h",
        )

    return _new


@pytest.fixture
def started_batch(validated_batch):
    """A validated batch of five requests in chunks of two, none of them run yet."""

    def _started(count: int = 5) -> Batch:
        return validated_batch([request_line(i) for i in range(1, count + 1)], chunk_size=2)

    return _started


def run_one_chunk() -> BatchChunk:
    chunk = runner.claim_chunk("test-worker", None)
    assert chunk is not None
    runner.run_chunk(chunk)
    return chunk


def file_lines(client, file_id):
    response = client.get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200
    return [json.loads(x) for x in b"".join(response.streaming_content).splitlines()]


def batch_json(client, batch):
    return client.get(f"/v1/batches/{batch.id}").json()


# --- Batch.transition ------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED))
def test_allowed_transition_sets_its_timestamp(new_batch, old, new):
    batch = new_batch()
    Batch.objects.filter(pk=batch.pk).update(status=old)
    batch.refresh_from_db()

    assert batch.transition(new) is True

    stored = Batch.objects.get(pk=batch.pk)
    assert stored.status == batch.status == new
    stamp = getattr(stored, ALLOWED[(old, new)])
    assert stamp is not None and abs((timezone.now() - stamp).total_seconds()) < 60
    assert batch.as_openai()[ALLOWED[(old, new)]] == int(stamp.timestamp())


@pytest.mark.parametrize("old", list(S))
def test_disallowed_transitions_raise_and_change_nothing(new_batch, old):
    batch = new_batch()
    Batch.objects.filter(pk=batch.pk).update(status=old)
    batch.refresh_from_db()

    for new in S:
        if (old, new) in ALLOWED:
            continue
        with pytest.raises(InvalidTransition):
            batch.transition(new)
        stored = Batch.objects.get(pk=batch.pk)
        assert stored.status == old
        assert getattr(stored, Batch.TIMESTAMPS.get(new, "completed_at")) is None


def test_transition_saves_extra_fields(new_batch):
    batch = new_batch()
    assert batch.transition(S.IN_PROGRESS, request_total=7, model="m")
    stored = Batch.objects.get(pk=batch.pk)
    assert (stored.request_total, stored.model) == (7, "m")


def test_transition_is_compare_and_swap(new_batch):
    # given two copies of one batch, as two workers would hold them
    first = new_batch()
    stale = Batch.objects.get(pk=first.pk)

    # when the first moves it and the stale copy then tries another move from "validating"
    assert first.transition(S.IN_PROGRESS) is True
    moved = stale.transition(S.CANCELLING)

    # then the stale move loses, changes nothing, and the copy now shows the real status
    assert moved is False
    assert stale.status == S.IN_PROGRESS
    stored = Batch.objects.get(pk=first.pk)
    assert stored.status == S.IN_PROGRESS
    assert stored.cancelling_at is None


def test_status_signal_fires_after_commit_and_only_on_a_real_move(
    new_batch, django_capture_on_commit_callbacks
):
    received = []

    def listener(sender, batch_id, old, new, **kwargs):
        received.append((batch_id, old, new))

    signals.batch_status_changed.connect(listener)
    try:
        batch = new_batch()
        stale = Batch.objects.get(pk=batch.pk)
        with django_capture_on_commit_callbacks(execute=True):
            batch.transition(S.IN_PROGRESS)
            stale.transition(S.FAILED)
            assert received == []  # nothing before commit
    finally:
        signals.batch_status_changed.disconnect(listener)
    assert received == [(batch.id, S.VALIDATING, S.IN_PROGRESS)]


# --- Cancel ---------------------------------------------------------------------------------


def test_cancel_of_a_completed_batch_is_409(client_api, create_batch):
    batch = create_batch([request_line(1)])
    response = client_api.post(f"/v1/batches/{batch['id']}/cancel")

    assert response.status_code == 409
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("batch_not_cancellable", "batch_id")
    assert client_api.get(f"/v1/batches/{batch['id']}").json()["status"] == "completed"


def test_double_cancel_is_409(client_api, started_batch):
    batch = started_batch()
    first = client_api.post(f"/v1/batches/{batch.id}/cancel")
    second = client_api.post(f"/v1/batches/{batch.id}/cancel")

    assert first.status_code == 200 and first.json()["status"] == "cancelling"
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "batch_not_cancellable"
    assert batch_json(client_api, batch)["cancelling_at"] == first.json()["cancelling_at"]


def test_cancel_keeps_finished_output_and_reports_the_rest(client_api, started_batch):
    # given a batch of five with its first chunk (two requests) finished
    batch = started_batch(5)
    run_one_chunk()

    # when the client cancels it
    response = client_api.post(f"/v1/batches/{batch.id}/cancel")

    # then it is cancelling until the worker settles it
    assert response.status_code == 200
    assert response.json()["status"] == "cancelling"
    assert response.json()["cancelling_at"] is not None
    tasks.settle_batch(batch.id)
    body = batch_json(client_api, batch)
    assert body["status"] == "cancelled"
    assert body["cancelled_at"] >= body["cancelling_at"]
    assert body["request_counts"] == {"total": 5, "completed": 2, "failed": 3}

    # and the finished answers are kept, the unfinished lines say why they did not run
    output = file_lines(client_api, body["output_file_id"])
    assert [x["custom_id"] for x in output] == ["req-1", "req-2"]
    errors = file_lines(client_api, body["error_file_id"])
    assert [x["custom_id"] for x in errors] == ["req-3", "req-4", "req-5"]
    assert all(x["response"] is None for x in errors)
    assert {x["error"]["code"] for x in errors} == {"batch_cancelled"}


def test_cancel_while_validating(client_api, new_batch):
    # given a batch its worker has not validated yet
    batch = new_batch(3)

    # when it is cancelled, settled, and the validation task arrives late
    assert client_api.post(f"/v1/batches/{batch.id}/cancel").json()["status"] == "cancelling"
    tasks.settle_batch(batch.id)
    tasks.validate_batch(batch.id)

    # then it stays cancelled and nothing ran
    body = batch_json(client_api, batch)
    assert body["status"] == "cancelled"
    assert body["in_progress_at"] is None
    assert body["output_file_id"] is None
    assert not BatchRequest.objects.filter(batch=batch, status="completed").exists()


def test_work_after_cancel_runs_nothing_more(client_api, started_batch):
    batch = started_batch(5)
    run_one_chunk()
    client_api.post(f"/v1/batches/{batch.id}/cancel")

    assert runner.claim_chunk("test-worker", None) is None
    assert tasks.run_work() == 0
    assert BatchRequest.objects.filter(batch=batch, status="completed").count() == 2


# --- Expiry ---------------------------------------------------------------------------------


def test_batch_past_its_window_expires_on_tick(client_api, started_batch):
    # given a batch with two of five requests finished when its window closes
    batch = started_batch(5)
    run_one_chunk()
    Batch.objects.filter(pk=batch.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    # when the periodic tick runs
    tasks.tick()

    # then the batch is expired, its finished lines kept and the others marked batch_expired
    body = batch_json(client_api, batch)
    assert body["status"] == "expired"
    assert body["expired_at"] is not None and body["completed_at"] is None
    assert body["request_counts"] == {"total": 5, "completed": 2, "failed": 3}
    output = file_lines(client_api, body["output_file_id"])
    assert [x["custom_id"] for x in output] == ["req-1", "req-2"]
    errors = file_lines(client_api, body["error_file_id"])
    assert [x["custom_id"] for x in errors] == ["req-3", "req-4", "req-5"]
    assert {x["error"]["code"] for x in errors} == {"batch_expired"}


def test_tick_leaves_a_batch_inside_its_window_running(client_api, started_batch, settings):
    batch = started_batch(2)
    settings.BATCH_TASK_SLICE_SECONDS = 30
    tasks.tick()
    # the tick hands the runnable work to a worker, which finishes it
    assert batch_json(client_api, batch)["status"] == "completed"


# --- Re-delivered tasks ----------------------------------------------------------------------


def test_redelivered_tasks_never_duplicate_a_line(client_api, create_batch, settings):
    # given a finished batch of five requests in three chunks
    settings.BATCH_CHUNK_SIZE = 2
    body = create_batch([request_line(i) for i in range(1, 6)])
    assert body["status"] == "completed"
    output_before = file_lines(client_api, body["output_file_id"])

    # when every task is delivered again
    tasks.validate_batch(body["id"])
    assert tasks.run_work() == 0
    tasks.settle_batch(body["id"])
    tasks.tick()

    # then the batch, its rows and its output are exactly as they were
    after = client_api.get(f"/v1/batches/{body['id']}").json()
    assert after == body
    assert BatchRequest.objects.filter(batch_id=body["id"]).count() == 5
    assert file_lines(client_api, after["output_file_id"]) == output_before


def test_validate_delivered_twice_splits_once(started_batch):
    batch = started_batch(5)
    tasks.validate_batch(batch.id)
    assert BatchRequest.objects.filter(batch=batch).count() == 5
    assert BatchChunk.objects.filter(batch=batch).count() == 3


def test_settle_delivered_twice_writes_files_once(client_api, started_batch):
    batch = started_batch(5)
    run_one_chunk()
    client_api.post(f"/v1/batches/{batch.id}/cancel")

    tasks.settle_batch(batch.id)
    first = batch_json(client_api, batch)
    tasks.settle_batch(batch.id)

    assert batch_json(client_api, batch) == first
    assert len(file_lines(client_api, first["error_file_id"])) == 3
    outputs = client_api.get("/v1/files", {"purpose": "batch_output"}).json()["data"]
    assert len(outputs) == 2


def test_a_chunk_run_twice_keeps_its_first_results(client_api, started_batch):
    # given a chunk that finished, then is run again by a re-delivered task
    batch = started_batch(2)
    chunk = run_one_chunk()
    first = list(BatchRequest.objects.filter(batch=batch).values_list("public_id", flat=True))
    runner.run_chunk(chunk)

    # then its rows keep their first answers and the counts did not double
    again = list(BatchRequest.objects.filter(batch=batch).values_list("public_id", flat=True))
    assert again == first
    batch.refresh_from_db()
    assert (batch.request_completed, batch.request_failed) == (2, 0)


def test_a_dead_workers_chunk_is_resumed_and_its_late_results_dropped(
    client_api, started_batch, settings
):
    # given a worker that leased the first chunk and then went silent past its lease
    batch = started_batch(4)
    dead = runner.claim_chunk("dead-worker", None)
    rows = list(BatchRequest.objects.filter(batch=batch, chunk=dead.index))
    BatchChunk.objects.filter(pk=dead.pk).update(leased_until=timezone.now() - timedelta(seconds=1))

    # when another worker runs the remaining work, and the dead one commits late
    settings.BATCH_TASK_SLICE_SECONDS = 30
    assert tasks.run_work() == 2
    late = runner.record_results(dead, rows, [EngineResult(200, {"late": True}) for _ in rows])

    # then each request answered once, with the live worker's result
    assert late == 0
    tasks.settle_batch(batch.id)
    body = batch_json(client_api, batch)
    assert body["status"] == "completed"
    output = file_lines(client_api, body["output_file_id"])
    assert [x["custom_id"] for x in output] == ["req-1", "req-2", "req-3", "req-4"]
    assert all("late" not in x["response"]["body"] for x in output)


def test_request_bodies_are_stored_exactly_as_sent(api_key, upload, model, settings):
    # given lines whose text needs escaping on its way into the database (tab, newline,
    # backslashes, quotes, non-ASCII, a line separator)
    tricky = 'a\tb\nc \\ \\N "q" é 漢 \u2028 end'
    settings.BATCH_CHUNK_SIZE = 2
    file = upload(jsonl([request_line(i, content=f"{tricky} {i}") for i in range(1, 6)]))
    batch = batch_services.create_batch(
        api_key[0],
        input_file_id=file["id"],
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )

    # when it is validated and split
    lifecycle.validate_and_split(batch)

    batch.refresh_from_db()
    assert batch.status == S.IN_PROGRESS, batch.errors
    # then every row holds its line's body unchanged, in chunks of two
    rows = BatchRequest.objects.filter(batch=batch).order_by("line")
    assert [json.loads(r.body)["messages"][0]["content"] for r in rows] == [
        f"{tricky} {i}" for i in range(1, 6)
    ]
    assert [(r.line, r.custom_id, r.chunk, r.status) for r in rows] == [
        (i, f"req-{i}", (i - 1) // 2, "pending") for i in range(1, 6)
    ]


@pytest.mark.django_db
def test_request_rows_compress_their_bodies_with_lz4_on_postgresql():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("column compression is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = %s",
            ["default_toast_compression"],
        )
        if not cursor.fetchone()[0]:
            pytest.skip("this PostgreSQL was built without lz4")
        cursor.execute(
            "SELECT attname, attcompression FROM pg_attribute"
            " WHERE attrelid = 'jobs_batchrequest'::regclass AND attname = ANY(%s)"
            " ORDER BY attname",
            [["body", "response_body"]],
        )
        assert cursor.fetchall() == [("body", "l"), ("response_body", "l")]


@pytest.mark.parametrize("path", ["_write_pg", "_write_portable"])
def test_results_are_written_only_to_rows_still_pending(started_batch, monkeypatch, path):
    # given a chunk of three rows, one of which a cancel settled first
    from django.db import connection

    if path == "_write_pg" and connection.vendor != "postgresql":
        pytest.skip("the PostgreSQL statement needs PostgreSQL")
    monkeypatch.setattr(runner.connection, "vendor", "postgresql" if path == "_write_pg" else "x")
    batch = started_batch(3)
    BatchRequest.objects.filter(batch=batch).update(chunk=0)
    chunk = runner.claim_chunk("w", None)
    rows = list(BatchRequest.objects.filter(batch=batch, chunk=chunk.index).order_by("line"))
    BatchRequest.objects.filter(pk=rows[1].pk).update(status=BatchRequest.Status.CANCELLED)

    # when the engine's answers are recorded: one success, two errors
    results = [
        EngineResult(200, {"text": 'é 😀 \\ "q"'}, input_tokens=3, output_tokens=5),
        EngineResult(200, {"text": "late"}, input_tokens=7, output_tokens=7),
        EngineResult(400, {"error": {"message": "bad"}}, input_tokens=2),
    ]
    assert runner.record_results(chunk, rows, results) == 2

    # then the settled row kept its status, the others hold their answers, the counts add up
    got = {r.custom_id: r for r in BatchRequest.objects.filter(batch=batch)}
    first, cancelled, last = (got[r.custom_id] for r in rows)
    assert cancelled.status == "cancelled" and cancelled.response_body == ""
    assert (first.status, first.response_status, json.loads(first.response_body)) == (
        "completed",
        200,
        {"text": 'é 😀 \\ "q"'},
    )
    assert first.response_body == json.dumps(results[0].body, ensure_ascii=False)  # byte for byte
    assert (last.status, last.response_status, last.input_tokens) == ("failed", 400, 2)
    assert first.public_id.startswith("batch_req_") and first.request_id.startswith("req_")
    assert first.finished_at is not None and last.finished_at is not None
    batch.refresh_from_db()
    assert (batch.request_completed, batch.request_failed) == (1, 1)
    assert (batch.input_tokens, batch.output_tokens) == (5, 5)
    assert BatchChunk.objects.get(pk=chunk.pk).status == BatchChunk.Status.DONE


# --- Engine crash ----------------------------------------------------------------------------


@pytest.fixture
def engine_crashes(monkeypatch):
    """Make the fake engine crash on its next ``n`` runs, whatever it is asked."""
    calls = {"crashes_left": 0, "runs": 0}
    real_run = FakeBackend.run

    def run(self, requests):
        calls["runs"] += 1
        if calls["crashes_left"]:
            calls["crashes_left"] -= 1
            raise EngineError("engine process died")
        return real_run(self, requests)

    monkeypatch.setattr(FakeBackend, "run", run)

    def _arm(n: int) -> dict:
        calls["crashes_left"] = n
        return calls

    return _arm


def test_a_crash_once_is_retried_and_loses_nothing(client_api, create_batch, engine_crashes):
    calls = engine_crashes(1)
    body = create_batch([request_line(1), request_line(2)])

    assert calls["runs"] == 2
    assert body["status"] == "completed"
    assert body["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    assert body["error_file_id"] is None
    assert BatchChunk.objects.get(batch_id=body["id"]).attempts == 2


def test_a_request_that_always_crashes_the_engine_is_isolated(client_api, create_batch, settings):
    # given a request that crashes the engine every time, sharing a chunk with a healthy one
    settings.BATCH_CHUNK_SIZE = 2
    lines = [
        request_line(1),
        request_line(2),
        request_line(3, content="boom [[crash]]"),
        request_line(4),
    ]

    # when the batch runs
    body = create_batch(lines)

    # then the crashing chunk was retried; only the crashing line is in the error file, and
    # the batch completed with every other answer
    assert BatchChunk.objects.get(batch_id=body["id"], index=1).attempts > 1
    assert body["status"] == "completed"
    assert body["request_counts"] == {"total": 4, "completed": 3, "failed": 1}
    output = file_lines(client_api, body["output_file_id"])
    assert [x["custom_id"] for x in output] == ["req-1", "req-2", "req-4"]
    [error] = file_lines(client_api, body["error_file_id"])
    assert error["custom_id"] == "req-3"
    assert error["response"]["status_code"] == 500
    assert error["response"]["body"]["error"]["code"] == "engine_crash"


def test_an_engine_that_keeps_crashing_fails_the_lines_not_the_batch(
    client_api, create_batch, engine_crashes
):
    # given an engine that dies on every run
    engine_crashes(10_000)

    # when a batch runs
    body = create_batch([request_line(1), request_line(2)])

    # then the chunk was given up after its attempts, each line is an error, the batch completed
    chunk = BatchChunk.objects.get(batch_id=body["id"])
    assert 1 < chunk.attempts <= Batch.MAX_CHUNK_ATTEMPTS
    assert body["status"] == "completed"
    assert body["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    assert body["output_file_id"] is None
    errors = file_lines(client_api, body["error_file_id"])
    assert [x["custom_id"] for x in errors] == ["req-1", "req-2"]
    assert {x["response"]["status_code"] for x in errors} == {500}
    assert {x["response"]["body"]["error"]["code"] for x in errors} <= {
        "engine_crash",
        "engine_error",
    }


def test_an_answer_holding_nan_is_stored_as_the_engine_wrote_it(started_batch):
    """PostgreSQL's json type refuses NaN: such a chunk's answers travel as strings instead."""
    batch = started_batch(2)
    BatchRequest.objects.filter(batch=batch).update(chunk=0)
    chunk = runner.claim_chunk("w", None)
    rows = list(BatchRequest.objects.filter(batch=batch, chunk=chunk.index).order_by("line"))
    results = [
        EngineResult(200, {"logprob": float("nan"), "text": "é"}, output_tokens=1),
        EngineResult(200, {"logprob": float("-inf")}, output_tokens=1),
    ]
    assert runner.record_results(chunk, rows, results) == 2
    stored = [BatchRequest.objects.get(pk=row.pk).response_body for row in rows]
    assert stored == [json.dumps(r.body, ensure_ascii=False) for r in results]
