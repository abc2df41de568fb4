"""GET /v1/batches/{id}/partial_output and partial_errors: the lines finished so far, streamed."""

import json

import pytest

from jobs import runner, tasks
from tests.conftest import request_line


@pytest.fixture
def running_batch(validated_batch):
    """A validated batch of five in chunks of two (line 2 fails in the engine), none run yet."""
    lines = [request_line(i, content="[[fail]]" if i == 2 else None) for i in range(1, 6)]
    return validated_batch(lines, chunk_size=2)


def run_one_chunk() -> None:
    chunk = runner.claim_chunk("test-worker", None)
    assert chunk is not None
    runner.run_chunk(chunk)


def download(client, batch_id, kind, **headers):
    response = client.get(f"/v1/batches/{batch_id}/partial_{kind}", **headers)
    assert response.status_code == 200, response.content
    return response, b"".join(response.streaming_content)


def file_bytes(client, file_id):
    return b"".join(client.get(f"/v1/files/{file_id}/content").streaming_content)


def test_a_running_batch_streams_what_has_finished(client_api, running_batch):
    # given a running batch whose first chunk (lines 1 and 2; line 2 failed) is done
    run_one_chunk()

    # when the client downloads the partial results
    output, output_body = download(client_api, running_batch.id, "output")
    errors, errors_body = download(client_api, running_batch.id, "errors")

    # then they stream as JSONL attachments, and say the batch is still running
    for response, kind in ((output, "output"), (errors, "errors")):
        assert response.streaming
        assert response["Content-Type"] == "application/jsonl"
        assert response["Content-Disposition"] == (
            f'attachment; filename="{running_batch.id}_partial_{kind}.jsonl"'
        )
        assert response["X-Batch-Status"] == "in_progress"
        assert response["X-Content-Type-Options"] == "nosniff"
    # holding only the finished lines, in the output-line shape
    [done] = [json.loads(x) for x in output_body.splitlines()]
    assert set(done) == {"id", "custom_id", "response", "error"}
    assert done["custom_id"] == "req-1" and done["error"] is None
    assert done["id"].startswith("batch_req_")
    assert done["response"]["status_code"] == 200
    assert done["response"]["body"]["object"] == "chat.completion"
    [failed] = [json.loads(x) for x in errors_body.splitlines()]
    assert failed["custom_id"] == "req-2"
    assert failed["response"]["status_code"] == 400


def test_nothing_finished_yet_is_an_empty_download(client_api, running_batch):
    for kind in ("output", "errors"):
        response, body = download(client_api, running_batch.id, kind)
        assert body == b""


def test_later_downloads_grow_and_end_equal_to_the_files(client_api, running_batch, settings):
    # given the partial output after one chunk
    run_one_chunk()
    _, first = download(client_api, running_batch.id, "output")

    # when the batch runs to its end
    settings.BATCH_TASK_SLICE_SECONDS = 30
    tasks.run_work()
    batch = client_api.get(f"/v1/batches/{running_batch.id}").json()
    assert batch["status"] == "completed"
    response, output = download(client_api, running_batch.id, "output")
    _, errors = download(client_api, running_batch.id, "errors")

    # then the earlier download is a prefix of the final one, which is byte for byte the file
    assert response["X-Batch-Status"] == "completed"
    assert output.startswith(first) and len(output.splitlines()) == 4
    assert output == file_bytes(client_api, batch["output_file_id"])
    assert errors == file_bytes(client_api, batch["error_file_id"])


def test_cancelled_lines_appear_in_partial_errors(client_api, running_batch):
    run_one_chunk()
    client_api.post(f"/v1/batches/{running_batch.id}/cancel")
    tasks.settle_batch(running_batch.id)

    _, errors = download(client_api, running_batch.id, "errors")

    codes = {json.loads(x)["custom_id"]: json.loads(x)["error"] for x in errors.splitlines()}
    assert set(codes) == {"req-2", "req-3", "req-4", "req-5"}
    assert codes["req-3"]["code"] == "batch_cancelled"


def test_any_accept_header_gets_the_bytes(client_api, running_batch):
    run_one_chunk()
    response, body = download(
        client_api, running_batch.id, "output", HTTP_ACCEPT="application/binary"
    )
    assert json.loads(body.splitlines()[0])["custom_id"] == "req-1"


def test_unknown_batch_is_404_in_the_envelope(client_api):
    response = client_api.get("/v1/batches/batch_nope/partial_output")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.json()["error"]["param"] == "batch_id"


def test_partial_endpoints_are_documented(client_api):
    schema = client_api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for kind in ("output", "errors"):
        operation = schema["paths"][f"/v1/batches/{{batch_id}}/partial_{kind}"]["get"]
        assert "finished so far" in operation["description"]
        assert "application/jsonl" in operation["responses"]["200"]["content"]
    assert "retry" in schema["paths"]["/v1/batches/{batch_id}/retry"]["post"]["operationId"].lower()
