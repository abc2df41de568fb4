"""The whole batch flow through the API with tasks run inline on the fake engine."""

from tests.conftest import request_line


def test_batch_completes_with_output_and_error_files(create_batch, client_api):
    # given three requests, one of which the engine fails
    lines = [request_line(1), request_line(2, content="x [[fail]]"), request_line(3)]

    # when the batch runs
    batch = create_batch(lines)

    # then it completes, successes in the output file and the failure in the error file
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    output = client_api.get(f"/v1/files/{batch['output_file_id']}/content")
    errors = client_api.get(f"/v1/files/{batch['error_file_id']}/content")
    out_ids = [line["custom_id"] for line in _lines(output)]
    err_lines = _lines(errors)
    assert out_ids == ["req-1", "req-3"]
    assert [e["custom_id"] for e in err_lines] == ["req-2"]
    assert err_lines[0]["response"]["status_code"] == 400


def _lines(response):
    import json

    return [json.loads(x) for x in b"".join(response.streaming_content).splitlines()]
