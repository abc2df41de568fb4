"""POST /v1/batches/{id}/retry: a linked child batch with only the lines that did not succeed."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import runner, tasks
from jobs.models import Batch, File
from jobs.services.lifecycle import fail_batch
from tests.conftest import request_line


@pytest.fixture
def started_batch(validated_batch):
    """A validated batch in chunks of two whose worker has not run any chunk yet."""

    def _started(lines) -> Batch:
        return validated_batch(lines, chunk_size=2, metadata={"run": "first"}, priority=7)

    return _started


def run_one_chunk() -> None:
    chunk = runner.claim_chunk("test-worker", None)
    assert chunk is not None
    runner.run_chunk(chunk)


def file_lines(client, file_id):
    response = client.get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200, response.content
    return [json.loads(x) for x in b"".join(response.streaming_content).splitlines()]


def retry(client, batch_id, body=None, capture=None):
    if capture is None:
        return client.post(f"/v1/batches/{batch_id}/retry", body or {}, format="json")
    with capture(execute=True):
        return client.post(f"/v1/batches/{batch_id}/retry", body or {}, format="json")


def test_retry_of_a_completed_batch_holds_only_its_failed_lines(
    client_api, create_batch, django_capture_on_commit_callbacks
):
    # given a completed batch where two of four requests failed in the engine
    lines = [
        request_line(1),
        request_line(2, content="[[fail]] two"),
        request_line(3),
        request_line(4, content="[[fail]] four"),
    ]
    parent = create_batch(lines, metadata={"team": "a"})
    assert parent["status"] == "completed"
    assert parent["request_counts"] == {"total": 4, "completed": 2, "failed": 2}

    # when the client retries it
    response = retry(client_api, parent["id"])

    # then a child batch linked to the parent is created over a new batch input file
    assert response.status_code == 200, response.content
    child = response.json()
    assert child["object"] == "batch"
    assert child["id"] != parent["id"]
    assert child["parent_batch_id"] == parent["id"]
    assert child["status"] == "validating"
    assert child["endpoint"] == parent["endpoint"]
    assert child["completion_window"] == parent["completion_window"]
    assert child["metadata"] == {"team": "a"}
    input_file = client_api.get(f"/v1/files/{child['input_file_id']}").json()
    assert input_file["purpose"] == "batch"
    assert input_file["filename"] == f"{parent['id']}_retry.jsonl"
    # holding exactly the failed lines, in input order, with their custom_ids and bodies
    retried = file_lines(client_api, child["input_file_id"])
    assert retried == [lines[1], lines[3]]
    # and the parent and its output are untouched
    again = client_api.get(f"/v1/batches/{parent['id']}").json()
    assert again["status"] == "completed"
    assert again["request_counts"] == parent["request_counts"]
    output = file_lines(client_api, parent["output_file_id"])
    assert [x["custom_id"] for x in output] == ["req-1", "req-3"]


def test_the_child_runs_like_any_batch(
    client_api, started_batch, django_capture_on_commit_callbacks, settings
):
    # given a batch of five cancelled after its first chunk (two lines) finished
    parent = started_batch([request_line(i) for i in range(1, 6)])
    run_one_chunk()
    assert client_api.post(f"/v1/batches/{parent.id}/cancel").status_code == 200
    tasks.settle_batch(parent.id)
    parent.refresh_from_db()
    assert parent.status == Batch.Status.CANCELLED

    # when it is retried and the child's worker runs
    settings.BATCH_TASK_SLICE_SECONDS = 30
    response = retry(client_api, parent.id, capture=django_capture_on_commit_callbacks)

    # then the child completes the three cancelled lines, and the two successes stay in the parent
    assert response.status_code == 200, response.content
    child = client_api.get(f"/v1/batches/{response.json()['id']}").json()
    assert child["status"] == "completed"
    assert child["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    assert child["metadata"] == {"run": "first"} and child["priority"] == 7
    child_ids = [x["custom_id"] for x in file_lines(client_api, child["output_file_id"])]
    parent_ids = [x["custom_id"] for x in file_lines(client_api, parent.output_file_id)]
    assert child_ids == ["req-3", "req-4", "req-5"]
    assert parent_ids == ["req-1", "req-2"]
    assert Batch.objects.get(pk=child["id"]).parent_id == parent.id


def test_retry_of_an_expired_batch_takes_its_expired_lines(client_api, started_batch):
    # given a batch that expired after one of its three chunks ran
    parent = started_batch([request_line(i) for i in range(1, 6)])
    run_one_chunk()
    Batch.objects.filter(pk=parent.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    tasks.tick()
    parent.refresh_from_db()
    assert parent.status == Batch.Status.EXPIRED

    # when retried
    response = retry(client_api, parent.id)

    # then the child holds the three expired lines
    assert response.status_code == 200, response.content
    retried = file_lines(client_api, response.json()["input_file_id"])
    assert [x["custom_id"] for x in retried] == ["req-3", "req-4", "req-5"]


def test_retry_overrides_window_metadata_and_priority(client_api, create_batch, settings):
    settings.BATCH_COMPLETION_WINDOWS = ["24h", "1h"]
    parent = create_batch([request_line(1, content="[[fail]]")], metadata={"a": "b"})

    response = retry(
        client_api,
        parent["id"],
        {"completion_window": "1h", "metadata": {"attempt": "2"}, "priority": -3},
    )

    assert response.status_code == 200, response.content
    child = response.json()
    assert child["completion_window"] == "1h"
    assert child["expires_at"] - child["created_at"] == 3600
    assert child["metadata"] == {"attempt": "2"}
    assert child["priority"] == -3


def test_retry_of_a_batch_whose_model_never_loaded(client_api, started_batch):
    parent = started_batch([request_line(1), request_line(2)])
    assert fail_batch(parent, "model_load_failed", "the model would not load")

    response = retry(client_api, parent.id)

    assert response.status_code == 200, response.content
    retried = file_lines(client_api, response.json()["input_file_id"])
    assert [x["custom_id"] for x in retried] == ["req-1", "req-2"]


def assert_conflict(response, code):
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        code,
        "batch_id",
    )


def test_a_running_batch_cannot_be_retried(client_api, started_batch):
    parent = started_batch([request_line(1), request_line(2, content="[[fail]]")])
    files_before = File.objects.count()

    assert_conflict(retry(client_api, parent.id), "batch_not_finished")
    Batch.objects.filter(pk=parent.pk).update(status=Batch.Status.VALIDATING)
    assert_conflict(retry(client_api, parent.id), "batch_not_finished")

    assert File.objects.count() == files_before
    assert not Batch.objects.filter(parent=parent).exists()


def test_a_batch_where_everything_succeeded_has_nothing_to_retry(client_api, create_batch):
    parent = create_batch([request_line(1), request_line(2)])

    assert_conflict(retry(client_api, parent["id"]), "nothing_to_retry")
    assert not Batch.objects.filter(parent_id=parent["id"]).exists()


def test_a_batch_that_failed_validation_has_nothing_to_retry(client_api, create_batch):
    parent = create_batch([request_line(1), request_line(1)])  # duplicate custom_id
    assert parent["status"] == "failed"

    assert_conflict(retry(client_api, parent["id"]), "nothing_to_retry")


def test_a_refused_child_leaves_no_file_behind(client_api, create_batch, settings, tmp_path):
    # given a failed line, and an operator who has since withdrawn the batch's window
    parent = create_batch([request_line(1, content="[[fail]]")])
    settings.BATCH_COMPLETION_WINDOWS = ["1h"]
    files_before = set(File.objects.values_list("id", flat=True))

    response = retry(client_api, parent["id"])

    # then the answer names the parameter, and neither a file row nor stored bytes are left
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "completion_window"
    assert set(File.objects.values_list("id", flat=True)) == files_before
    stored = {p.parent.name for p in (tmp_path / "files" / "files").glob("*/*")}
    assert stored == files_before


def test_bad_overrides_are_400_with_the_param(client_api, create_batch):
    parent = create_batch([request_line(1, content="[[fail]]")])

    response = retry(client_api, parent["id"], {"priority": 1000})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "priority"
    assert not Batch.objects.filter(parent_id=parent["id"]).exists()
