"""The Batches and Models API on the fake engine: object shape, output files, paging, endpoints."""

import json

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from models_registry.services import register_model
from tests.conftest import FAKE_MODEL, jsonl, request_line

BATCH_FIELDS = {
    "id",
    "object",
    "endpoint",
    "errors",
    "input_file_id",
    "completion_window",
    "status",
    "output_file_id",
    "error_file_id",
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    "request_counts",
    "metadata",
    "model",
    "usage",
}


def file_lines(client, file_id):
    response = client.get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200
    return [json.loads(x) for x in b"".join(response.streaming_content).splitlines()]


def assert_envelope(response, status, code, param):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param), error


# --- Creating and reading a batch -----------------------------------------------------------


def test_create_answers_every_openai_field(client_api, upload, model):
    # given an uploaded input file
    file = upload(jsonl([request_line(1), request_line(2)]))

    # when a batch is created (its worker has not run yet)
    response = client_api.post(
        "/v1/batches",
        {
            "input_file_id": file["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "metadata": {"project": "tests"},
        },
        format="json",
    )

    # then the answer is a complete OpenAI batch object in "validating"
    assert response.status_code == 200, response.content
    batch = response.json()
    assert BATCH_FIELDS <= set(batch)
    assert batch["id"].startswith("batch_")
    assert batch["object"] == "batch"
    assert batch["endpoint"] == "/v1/chat/completions"
    assert batch["input_file_id"] == file["id"]
    assert batch["completion_window"] == "24h"
    assert batch["status"] == "validating"
    assert batch["errors"] is None
    assert batch["metadata"] == {"project": "tests"}
    assert batch["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert abs(batch["created_at"] - timezone.now().timestamp()) < 60
    assert batch["expires_at"] - batch["created_at"] == 24 * 3600
    for name in (
        "in_progress_at",
        "finalizing_at",
        "completed_at",
        "failed_at",
        "expired_at",
        "cancelling_at",
        "cancelled_at",
        "output_file_id",
        "error_file_id",
    ):
        assert batch[name] is None, name
    assert batch["usage"]["total_tokens"] == 0
    assert client_api.get(f"/v1/batches/{batch['id']}").json() == batch


def test_completed_batch_has_its_timestamps_counts_and_model(create_batch):
    batch = create_batch([request_line(1), request_line(2), request_line(3)])

    assert batch["status"] == "completed"
    assert batch["model"] == FAKE_MODEL
    assert batch["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    assert batch["created_at"] <= batch["in_progress_at"] <= batch["finalizing_at"]
    assert batch["finalizing_at"] <= batch["completed_at"]
    assert batch["failed_at"] is batch["cancelled_at"] is batch["expired_at"] is None
    assert batch["error_file_id"] is None
    assert batch["metadata"] is None


def test_output_lines_have_the_openai_shape(client_api, create_batch):
    batch = create_batch([request_line(1), request_line(2)])

    lines = file_lines(client_api, batch["output_file_id"])

    assert [line["custom_id"] for line in lines] == ["req-1", "req-2"]
    for line in lines:
        assert set(line) == {"id", "custom_id", "response", "error"}
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        assert set(line["response"]) == {"status_code", "request_id", "body"}
        assert line["response"]["status_code"] == 200
        assert line["response"]["request_id"]
        assert line["response"]["body"]["object"] == "chat.completion"
        assert line["response"]["body"]["model"] == FAKE_MODEL
    assert len({line["id"] for line in lines}) == 2


def test_output_file_is_a_listed_batch_output(client_api, create_batch):
    batch = create_batch([request_line(1)])
    output = client_api.get(f"/v1/files/{batch['output_file_id']}").json()
    assert output["purpose"] == "batch_output"
    listed = client_api.get("/v1/files", {"purpose": "batch_output"}).json()
    assert [f["id"] for f in listed["data"]] == [batch["output_file_id"]]


def test_usage_is_the_sum_of_the_lines(client_api, create_batch):
    # given requests of different lengths
    batch = create_batch(
        [
            request_line(1, content="one"),
            request_line(2, content="two words"),
            request_line(3, content="and three words"),
        ]
    )

    # then the batch's usage adds up what each response reports
    bodies = [line["response"]["body"] for line in file_lines(client_api, batch["output_file_id"])]
    prompt = sum(b["usage"]["prompt_tokens"] for b in bodies)
    completion = sum(b["usage"]["completion_tokens"] for b in bodies)
    assert (prompt, completion) == (6, 9)
    usage = batch["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (prompt, completion)
    assert usage["total_tokens"] == prompt + completion


def test_failed_request_goes_to_the_error_file_and_counts(client_api, create_batch):
    batch = create_batch([request_line(1), request_line(2, content="[[fail]]")])

    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    [error] = file_lines(client_api, batch["error_file_id"])
    assert error["custom_id"] == "req-2"
    assert error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["code"] == "fake_failure"


def test_output_expires_after_sets_the_output_files_expiry(client_api, create_batch):
    batch = create_batch(
        [request_line(1), request_line(2, content="[[fail]]")],
        output_expires_after={"anchor": "created_at", "seconds": 7200},
    )
    for file_id in (batch["output_file_id"], batch["error_file_id"]):
        file = client_api.get(f"/v1/files/{file_id}").json()
        assert file["expires_at"] - file["created_at"] == 7200


def test_output_files_expire_by_default_after_the_operator_setting(
    client_api, create_batch, settings
):
    settings.BATCH_OUTPUT_EXPIRES_SECONDS = 3 * 24 * 3600
    batch = create_batch([request_line(1)])
    file = client_api.get(f"/v1/files/{batch['output_file_id']}").json()
    assert file["expires_at"] - file["created_at"] == 3 * 24 * 3600


def test_another_key_cannot_see_or_cancel_a_batch(client_api, other_client, create_batch):
    batch = create_batch([request_line(1)])
    assert_envelope(other_client.get(f"/v1/batches/{batch['id']}"), 404, "not_found", "batch_id")
    assert_envelope(
        other_client.post(f"/v1/batches/{batch['id']}/cancel"), 404, "not_found", "batch_id"
    )
    assert other_client.get("/v1/batches").json()["data"] == []
    assert client_api.get(f"/v1/batches/{batch['id']}").json()["status"] == "completed"


def test_malformed_request_body_is_400(client_api):
    response = client_api.post("/v1/batches", data="{not json", content_type="application/json")
    assert_envelope(response, 400, "invalid_json", None)


def test_missing_batch_id(client_api):
    assert_envelope(client_api.get("/v1/batches/batch_nope"), 404, "not_found", "batch_id")


# --- Listing -------------------------------------------------------------------------------


def test_list_pages_newest_first(client_api, create_batch):
    # given five batches, created one after another
    created = [create_batch([request_line(i)])["id"] for i in range(5)]

    # when they are listed two at a time
    pages, after = [], None
    while True:
        params = {"limit": 2, **({"after": after} if after else {})}
        body = client_api.get("/v1/batches", params).json()
        assert body["object"] == "list"
        page = [b["id"] for b in body["data"]]
        assert (body["first_id"], body["last_id"]) == (page[0], page[-1])
        pages.append((page, body["has_more"]))
        if not body["has_more"]:
            break
        after = body["last_id"]

    # then every batch comes once, newest first, and only the last page says it is the last
    newest_first = created[::-1]
    assert pages == [
        (newest_first[0:2], True),
        (newest_first[2:4], True),
        (newest_first[4:], False),
    ]


def test_list_default_limit_is_20(client_api, create_batch):
    for i in range(21):
        create_batch([request_line(i)])
    body = client_api.get("/v1/batches").json()
    assert len(body["data"]) == 20
    assert body["has_more"] is True


def test_list_items_are_full_batch_objects(client_api, create_batch):
    batch = create_batch([request_line(1)])
    assert client_api.get("/v1/batches").json()["data"] == [batch]


def test_list_ignores_an_order_parameter(client_api, create_batch):
    first, second = create_batch([request_line(1)])["id"], create_batch([request_line(2)])["id"]
    body = client_api.get("/v1/batches", {"order": "asc"}).json()
    assert [b["id"] for b in body["data"]] == [second, first]


@pytest.mark.parametrize("limit", [0, 101, -1, "ten"])
def test_list_limit_out_of_range(client_api, limit):
    assert_envelope(client_api.get("/v1/batches", {"limit": limit}), 400, "invalid_value", "limit")


def test_list_limit_of_100_is_allowed(client_api):
    assert client_api.get("/v1/batches", {"limit": 100}).status_code == 200


# --- Endpoints -------------------------------------------------------------------------------


def test_completions_endpoint(client_api, create_batch):
    lines = [
        request_line(i, url="/v1/completions", body={"model": FAKE_MODEL, "prompt": f"say {i}"})
        for i in (1, 2)
    ]
    batch = create_batch(lines, endpoint="/v1/completions")

    assert batch["status"] == "completed"
    assert batch["endpoint"] == "/v1/completions"
    bodies = [line["response"]["body"] for line in file_lines(client_api, batch["output_file_id"])]
    assert [b["object"] for b in bodies] == ["text_completion"] * 2
    assert bodies[0]["choices"][0]["text"] == "echo: say 1"


def test_embeddings_endpoint(client_api, create_batch):
    # given an embedding model and inputs for it
    register_model("fake-embed", kind="embed")
    lines = [
        request_line(i, url="/v1/embeddings", body={"model": "fake-embed", "input": f"text {i}"})
        for i in (1, 2)
    ]

    # when the batch runs
    batch = create_batch(lines, endpoint="/v1/embeddings")

    # then each line holds a vector, and only input tokens are counted
    assert batch["status"] == "completed"
    assert batch["model"] == "fake-embed"
    bodies = [line["response"]["body"] for line in file_lines(client_api, batch["output_file_id"])]
    assert all(b["object"] == "list" and b["data"][0]["embedding"] for b in bodies)
    assert batch["usage"]["input_tokens"] == 4
    assert batch["usage"]["output_tokens"] == 0


def test_generation_model_on_the_embeddings_endpoint_fails(client_api, create_batch):
    line = request_line(1, url="/v1/embeddings", body={"model": FAKE_MODEL, "input": "x"})
    batch = create_batch([line], endpoint="/v1/embeddings")
    assert batch["status"] == "failed"
    assert batch["errors"]["data"][0]["code"] == "unsupported_model_endpoint"


# --- Models ----------------------------------------------------------------------------------


MODEL_FIELDS = {"id", "object", "created", "owned_by"}
# Extensions of issue #11 (docs/models.md): lineage, kind, test status.
MODEL_EXTENSIONS = {"parent", "version", "origin", "base", "kind", "test_status"}


def test_models_list(client_api, model):
    register_model("retired-model", is_active=False)
    body = client_api.get("/v1/models").json()

    assert body["object"] == "list"
    by_id = {m["id"]: m for m in body["data"]}
    assert FAKE_MODEL in by_id
    assert "retired-model" not in by_id
    assert all(
        set(m) == MODEL_FIELDS | MODEL_EXTENSIONS and m["object"] == "model" for m in body["data"]
    )
    assert isinstance(by_id[FAKE_MODEL]["created"], int)


def test_model_detail(client_api, model):
    response = client_api.get(f"/v1/models/{FAKE_MODEL}")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in MODEL_FIELDS} == {
        "id": FAKE_MODEL,
        "object": "model",
        "created": int(model.created_at.timestamp()),
        "owned_by": "batchserver",
    }
    assert set(body) == MODEL_FIELDS | MODEL_EXTENSIONS | {"usage"}


def test_model_id_with_a_slash(client_api, db):
    register_model("org/some-model")
    assert client_api.get("/v1/models/org/some-model").json()["id"] == "org/some-model"


def test_unknown_or_inactive_model_is_404(client_api, db):
    register_model("retired-model", is_active=False)
    assert_envelope(client_api.get("/v1/models/no-such-model"), 404, "not_found", "model")
    assert_envelope(client_api.get("/v1/models/retired-model"), 404, "not_found", "model")


def test_models_need_a_key(model):
    response = APIClient().get("/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
