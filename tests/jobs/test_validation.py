"""Every rule a batch input must follow, checked through the API as a client meets it.

Line rules fail the batch as a whole with ``errors.data[] = {code, line, message, param}``, the
line being the physical line of the file; request rules answer the POST itself with a 4xx in the
OpenAI envelope.
"""

import io

import pytest

from jobs import tasks
from jobs.models import File
from models_registry.services import register_model
from tests.conftest import jsonl, request_line


def line_errors(batch):
    """(code, line, param) of each reported error, in the order reported."""
    assert batch["status"] == "failed", batch
    assert batch["failed_at"] is not None
    data = batch["errors"]["data"]
    for error in data:
        assert set(error) == {"code", "line", "message", "param"}
        assert error["message"]
    return [(e["code"], e["line"], e["param"]) for e in data]


def assert_api_error(response, status, code, param):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert (body["error"]["code"], body["error"]["param"]) == (code, param), body
    assert body["error"]["message"]


def post_batch(client, file_id, **overrides):
    payload = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        **overrides,
    }
    return client.post("/v1/batches", payload, format="json")


# --- Line rules: the batch fails and names the physical line -------------------------------


def test_malformed_json_line(create_batch):
    batch = create_batch([request_line(1), '{"custom_id": "req-2", "method": '])
    assert line_errors(batch) == [("invalid_json_line", 2, None)]
    assert batch["output_file_id"] is None


@pytest.mark.parametrize("value", ["[1, 2]", '"text"', "42", "null"])
def test_json_that_is_not_an_object(create_batch, value):
    batch = create_batch([value, request_line(2)])
    assert line_errors(batch) == [("invalid_json_line", 1, None)]


def test_blank_lines_are_skipped_but_keep_physical_numbering(create_batch):
    # given blank and whitespace-only lines before a broken one
    lines = [request_line(1), "", "   ", request_line(4), "\t", "{broken"]

    # when the batch validates
    batch = create_batch(lines)

    # then only the broken line is reported, at its physical line number
    assert line_errors(batch) == [("invalid_json_line", 6, None)]


def test_blank_lines_alone_do_not_count_as_requests(create_batch):
    batch = create_batch([request_line(1), "", request_line(3), ""])
    assert batch["status"] == "completed"
    assert batch["request_counts"]["total"] == 2


def test_utf8_bom_is_accepted(create_batch):
    batch = create_batch(b"\xef\xbb\xbf" + jsonl([request_line(1), request_line(2)]))
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 2, "completed": 2, "failed": 0}


def test_crlf_line_endings_are_accepted(create_batch):
    content = jsonl([request_line(1), request_line(2)]).replace(b"\n", b"\r\n")
    batch = create_batch(content)
    assert batch["status"] == "completed"
    assert batch["request_counts"]["completed"] == 2


def test_tabs_newlines_and_backslashes_reach_the_engine_and_the_output_intact(
    create_batch, client_api
):
    # given ids and prompts with every character the database's COPY format escapes
    tricky = 'tab\there, newline\nthere, backslash \\ and \\n, quote " and \u00e9\U0001f600'
    lines = [
        request_line(0, content=tricky, custom_id="id\twith\\odd\nchars"),
        request_line(1, content="plain"),
    ]
    # when they run as a batch
    batch = create_batch(lines)
    # then the stored request is the one sent, and the output names the same custom_id
    from jobs.models import BatchRequest

    rows = BatchRequest.objects.filter(batch_id=batch["id"]).order_by("line")
    import json

    assert json.loads(rows[0].body) == lines[0]["body"]
    assert rows[0].custom_id == "id\twith\\odd\nchars"
    output = client_api.get(f"/v1/files/{batch['output_file_id']}/content")
    answers = [json.loads(x) for x in b"".join(output.streaming_content).splitlines()]
    assert [a["custom_id"] for a in answers] == ["id\twith\\odd\nchars", "req-1"]
    answer = answers[0]["response"]["body"]["choices"][0]["message"]["content"]
    assert answer.endswith('backslash \\ and \\n, quote " and \u00e9\U0001f600')  # fake echo


def test_last_line_without_newline_is_read(create_batch):
    batch = create_batch(jsonl([request_line(1), request_line(2)]).rstrip(b"\n"))
    assert batch["request_counts"] == {"total": 2, "completed": 2, "failed": 0}


def test_non_utf8_bytes(create_batch):
    bad = b'{"custom_id": "caf\xe9", "method": "POST"}\n'
    batch = create_batch(jsonl([request_line(1)]) + bad)
    assert line_errors(batch) == [("invalid_encoding", 2, None)]


def test_duplicate_custom_id(create_batch):
    batch = create_batch([request_line(1), request_line(2), request_line(3, custom_id="req-1")])
    assert line_errors(batch) == [("duplicate_custom_id", 3, "custom_id")]


@pytest.mark.parametrize("custom_id", [None, ""])
def test_missing_custom_id(create_batch, custom_id):
    line = request_line(2)
    if custom_id is None:
        del line["custom_id"]
    else:
        line["custom_id"] = custom_id
    batch = create_batch([request_line(1), line])
    assert line_errors(batch) == [("missing_required_parameter", 2, "custom_id")]


def test_custom_id_that_is_not_a_string(create_batch):
    batch = create_batch([request_line(1, custom_id=7)])
    assert line_errors(batch) == [("invalid_custom_id", 1, "custom_id")]


def test_custom_id_of_65_characters_is_rejected(create_batch):
    batch = create_batch([request_line(1), request_line(2, custom_id="x" * 65)])
    assert line_errors(batch) == [("invalid_custom_id", 2, "custom_id")]


def test_custom_id_of_64_characters_is_kept_whole(create_batch, client_api):
    batch = create_batch([request_line(1, custom_id="x" * 64)])
    assert batch["status"] == "completed"
    output = client_api.get(f"/v1/files/{batch['output_file_id']}/content")
    assert b'"custom_id": "' + b"x" * 64 + b'"' in b"".join(output.streaming_content)


@pytest.mark.parametrize("method", ["GET", "post", None])
def test_wrong_method(create_batch, method):
    line = request_line(1, method=method)
    if method is None:
        del line["method"]
    batch = create_batch([line])
    assert line_errors(batch) == [("invalid_method", 1, "method")]


def test_url_other_than_the_batch_endpoint(create_batch):
    batch = create_batch([request_line(1), request_line(2, url="/v1/completions")])
    assert line_errors(batch) == [("invalid_url", 2, "url")]


def test_mixed_models(create_batch):
    register_model("fake-model-b")
    batch = create_batch([request_line(1), request_line(2, model="fake-model-b")])
    assert line_errors(batch) == [("mismatched_model", 2, "body.model")]


def test_mixed_models_when_the_operator_allows_them(create_batch, settings):
    settings.BATCH_ALLOW_MIXED_MODELS = True
    register_model("fake-model-b")
    batch = create_batch([request_line(1), request_line(2, model="fake-model-b")])
    assert batch["status"] == "completed"
    assert batch["request_counts"]["completed"] == 2


def test_unknown_model(create_batch):
    batch = create_batch([request_line(1, model="no-such-model")])
    assert line_errors(batch) == [("model_not_found", 1, "body.model")]


def test_missing_model(create_batch):
    line = request_line(1)
    del line["body"]["model"]
    batch = create_batch([line])
    assert line_errors(batch) == [("missing_required_parameter", 1, "body.model")]


def test_model_that_does_not_serve_the_endpoint(create_batch):
    # given an embedding model named on the chat endpoint
    register_model("fake-embed", kind="embed")

    # when the batch validates
    batch = create_batch([request_line(1, model="fake-embed")])

    # then the line is refused, and the message says why
    assert line_errors(batch) == [("unsupported_model_endpoint", 1, "body.model")]
    assert "does not serve /v1/chat/completions" in batch["errors"]["data"][0]["message"]


@pytest.mark.parametrize("body", [["a list"], "text", None])
def test_body_that_is_not_an_object(create_batch, body):
    batch = create_batch([request_line(1, body=body)])
    assert line_errors(batch) == [("invalid_body", 1, "body")]


def test_stream_true_is_refused(create_batch):
    line = request_line(1)
    line["body"]["stream"] = True
    batch = create_batch([line])
    assert line_errors(batch) == [("stream_not_supported", 1, "body.stream")]


def test_stream_false_is_accepted(create_batch):
    line = request_line(1)
    line["body"]["stream"] = False
    assert create_batch([line])["status"] == "completed"


def test_several_errors_are_all_reported_in_line_order(create_batch):
    # given a file with five different mistakes between good lines
    lines = [
        request_line(1),
        "not json",
        request_line(3, method="GET"),
        request_line(4),
        "",
        request_line(6, custom_id="req-1"),
        request_line(7, url="/v1/embeddings"),
        request_line(8, model="no-such-model"),
    ]

    # when the batch validates
    batch = create_batch(lines)

    # then every mistake is reported with its own line, and nothing ran
    assert line_errors(batch) == [
        ("invalid_json_line", 2, None),
        ("invalid_method", 3, "method"),
        ("duplicate_custom_id", 6, "custom_id"),
        ("invalid_url", 7, "url"),
        ("model_not_found", 8, "body.model"),
    ]
    assert batch["request_counts"]["completed"] == 0
    assert batch["output_file_id"] is None and batch["error_file_id"] is None


def test_only_blank_lines_is_an_empty_batch(create_batch):
    batch = create_batch(b"\n  \n\n")
    assert line_errors(batch) == [("empty_file", None, None)]


def test_line_limit_lowered_after_upload_still_holds(
    client_api, upload, model, settings, django_capture_on_commit_callbacks
):
    # given a file uploaded under a generous limit
    file = upload(jsonl([request_line(i) for i in range(1, 5)]))

    # when the operator lowers the limit before the batch is created
    settings.BATCH_MAX_LINES = 3
    with django_capture_on_commit_callbacks(execute=True):
        created = post_batch(client_api, file["id"]).json()

    # then the batch fails at the first line past the limit
    batch = client_api.get(f"/v1/batches/{created['id']}").json()
    assert line_errors(batch) == [("too_many_requests", 4, None)]


# --- Upload rules: the upload itself is refused ---------------------------------------------


def _post_file(client, content: bytes, filename="input.jsonl", purpose="batch"):
    buffer = io.BytesIO(content)
    buffer.name = filename
    return client.post("/v1/files", {"file": buffer, "purpose": purpose}, format="multipart")


def test_too_many_lines(client_api, settings):
    settings.BATCH_MAX_LINES = 3
    ok = _post_file(client_api, jsonl([request_line(i) for i in range(3)]))
    assert ok.status_code == 200
    response = _post_file(client_api, jsonl([request_line(i) for i in range(4)]))
    assert_api_error(response, 400, "too_many_lines", "file")


def test_too_large(client_api, settings):
    content = jsonl([request_line(i) for i in range(10)])
    settings.BATCH_MAX_FILE_BYTES = len(content) - 1
    response = _post_file(client_api, content)
    assert_api_error(response, 413, "file_too_large", "file")
    assert client_api.get("/v1/files").json()["data"] == []


def test_file_at_the_size_limit_is_accepted(client_api, settings):
    content = jsonl([request_line(i) for i in range(10)])
    settings.BATCH_MAX_FILE_BYTES = len(content)
    assert _post_file(client_api, content).json()["bytes"] == len(content)


def test_empty_file(client_api):
    assert_api_error(_post_file(client_api, b""), 400, "empty_file", "file")


def test_batch_input_must_be_jsonl(client_api):
    response = _post_file(client_api, jsonl([request_line(1)]), filename="input.json")
    assert_api_error(response, 400, "invalid_file_format", "file")


def test_other_purposes_take_any_filename(client_api):
    response = _post_file(client_api, b"some notes", filename="notes.txt", purpose="user_data")
    assert response.status_code == 200
    assert response.json()["purpose"] == "user_data"


def test_unknown_purpose(client_api):
    response = _post_file(client_api, jsonl([request_line(1)]), purpose="batch_output")
    assert_api_error(response, 400, "invalid_choice", "purpose")


# --- Batch request rules --------------------------------------------------------------------


def test_file_with_another_purpose_is_not_a_batch_input(client_api, upload, model):
    file = upload(jsonl([request_line(1)]), purpose="user_data")
    response = post_batch(client_api, file["id"])
    assert_api_error(response, 400, "invalid_file_purpose", "input_file_id")


def test_unsupported_endpoint(client_api, upload, model):
    file = upload(jsonl([request_line(1)]))
    response = post_batch(client_api, file["id"], endpoint="/v1/responses")
    assert_api_error(response, 400, "unsupported_endpoint", "endpoint")


def test_completion_window_not_offered(client_api, upload, model):
    file = upload(jsonl([request_line(1)]))
    response = post_batch(client_api, file["id"], completion_window="48h")
    assert_api_error(response, 400, "invalid_value", "completion_window")


def test_completion_window_the_operator_allows(client_api, upload, model, settings):
    settings.BATCH_COMPLETION_WINDOWS = ["24h", "48h"]
    file = upload(jsonl([request_line(1)]))
    batch = post_batch(client_api, file["id"], completion_window="48h").json()
    assert batch["completion_window"] == "48h"
    assert batch["expires_at"] - batch["created_at"] == 48 * 3600


@pytest.mark.parametrize(
    "metadata, code",
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata_too_large"),
        ({"k" * 65: "v"}, "metadata_key_too_long"),
        ({"k": "v" * 513}, "metadata_value_too_long"),
        ({"k": 1}, "invalid_value"),
        (["not", "an", "object"], "invalid_value"),
    ],
)
def test_metadata_over_the_limits(client_api, upload, model, metadata, code):
    file = upload(jsonl([request_line(1)]))
    response = post_batch(client_api, file["id"], metadata=metadata)
    assert_api_error(response, 400, code, "metadata")


def test_metadata_at_the_limits_is_kept(client_api, upload, model):
    metadata = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    file = upload(jsonl([request_line(1)]))
    batch = post_batch(client_api, file["id"], metadata=metadata).json()
    assert batch["metadata"] == metadata


def test_another_keys_file_answers_like_a_missing_one(client_api, other_client, upload, model):
    # given a file that belongs to the first key
    file = upload(jsonl([request_line(1)]))

    # when the other key names it, and a made-up id
    theirs = post_batch(other_client, file["id"])
    missing = post_batch(other_client, "file-doesnotexist")

    # then both answer 404 with the same shape, revealing nothing
    assert_api_error(theirs, 404, "not_found", "input_file_id")
    assert_api_error(missing, 404, "not_found", "input_file_id")
    assert theirs.json()["error"]["message"].replace(file["id"], "ID") == missing.json()["error"][
        "message"
    ].replace("file-doesnotexist", "ID")


@pytest.mark.parametrize("field", ["input_file_id", "endpoint", "completion_window"])
def test_required_batch_fields(client_api, upload, model, field):
    file = upload(jsonl([request_line(1)]))
    payload = {
        "input_file_id": file["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    del payload[field]
    response = client_api.post("/v1/batches", payload, format="json")
    assert_api_error(response, 400, "required", field)


# --- The input file disappears before the worker reads it -----------------------------------


def _created_but_not_validated(client, upload):
    file = upload(jsonl([request_line(1)]))
    batch = post_batch(client, file["id"]).json()  # its on-commit enqueue never fires here
    return file, batch


def test_input_file_deleted_before_validation_fails_the_batch(
    client_api, upload, model, django_capture_on_commit_callbacks
):
    # given a batch whose worker has not validated it yet
    file, batch = _created_but_not_validated(client_api, upload)

    # when the client deletes its input file, then the worker (or the periodic tick) gets to it
    with django_capture_on_commit_callbacks(execute=True):
        assert client_api.delete(f"/v1/files/{file['id']}").status_code == 200
    tasks.validate_batch(batch["id"])
    tasks.tick()

    # then the batch fails, naming the missing input, instead of hanging in "validating"
    body = client_api.get(f"/v1/batches/{batch['id']}").json()
    assert line_errors(body) == [("file_not_found", None, "input_file_id")]
    assert body["input_file_id"] == file["id"]


def test_input_bytes_missing_fails_the_batch(client_api, upload, model):
    file, batch = _created_but_not_validated(client_api, upload)
    File.objects.get(id=file["id"]).content.delete(save=False)

    tasks.validate_batch(batch["id"])

    body = client_api.get(f"/v1/batches/{batch['id']}").json()
    assert line_errors(body) == [("file_not_found", None, "input_file_id")]
