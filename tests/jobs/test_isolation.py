"""Each API key sees only its own files and batches: another key's id answers like a missing one."""

import json

import pytest

from jobs.models import Batch
from tests.conftest import request_line

MISSING_FILE = "file-000000000000000000000000"
MISSING_BATCH = "batch_000000000000000000000000"

FILE_CALLS = [
    ("get", "/v1/files/{id}"),
    ("get", "/v1/files/{id}/content"),
    ("delete", "/v1/files/{id}"),
]
BATCH_CALLS = [
    ("get", "/v1/batches/{id}"),
    ("post", "/v1/batches/{id}/cancel"),
    ("post", "/v1/batches/{id}/retry"),
    ("get", "/v1/batches/{id}/partial_output"),
    ("get", "/v1/batches/{id}/partial_errors"),
    ("post", "/v1/batches/{id}/pause"),
    ("post", "/v1/batches/{id}/resume"),
    ("post", "/v1/batches/{id}/priority"),
]


@pytest.fixture
def first_keys_objects(create_batch, upload):
    """The first key's objects: an ended batch with output and error files, and a running one."""
    ended = create_batch([request_line(1), request_line(2, content="[[fail]]")])
    assert ended["output_file_id"] and ended["error_file_id"]
    running = Batch.objects.get(pk=ended["id"])
    running.pk = None
    running.id = "batch_" + "1" * 24
    running.status = Batch.Status.IN_PROGRESS
    running.save(force_insert=True)
    spare = upload(b"not for anyone else\n", purpose="user_data", filename="notes.txt")
    files = [ended["input_file_id"], ended["output_file_id"], ended["error_file_id"], spare["id"]]
    return {"files": files, "batches": [ended["id"], running.id]}


def call(client, method, path):
    return getattr(client, method)(path)


def assert_same_as_missing(client, method, template, object_id, missing_id):
    """The answer for another key's id is the answer for an id that does not exist at all."""
    theirs = call(client, method, template.format(id=object_id))
    missing = call(client, method, template.format(id=missing_id))
    assert theirs.status_code == missing.status_code == 404, (method, template, theirs.content)
    assert theirs["Content-Type"] == missing["Content-Type"] == "application/json"
    expected = json.loads(missing.content.decode().replace(missing_id, object_id))
    assert theirs.json() == expected
    assert set(expected["error"]) == {"message", "type", "param", "code"}
    assert expected["error"]["code"] == "not_found"


@pytest.mark.parametrize(("method", "template"), FILE_CALLS)
def test_file_endpoints_answer_404_for_another_keys_files(
    other_client, first_keys_objects, method, template
):
    for file_id in first_keys_objects["files"]:
        assert_same_as_missing(other_client, method, template, file_id, MISSING_FILE)


@pytest.mark.parametrize(("method", "template"), BATCH_CALLS)
def test_batch_endpoints_answer_404_for_another_keys_batches(
    other_client, first_keys_objects, method, template
):
    for batch_id in first_keys_objects["batches"]:
        assert_same_as_missing(other_client, method, template, batch_id, MISSING_BATCH)


def test_nothing_of_the_first_key_changed(client_api, other_client, first_keys_objects):
    # when the second key tries every write on the first key's objects
    for file_id in first_keys_objects["files"]:
        other_client.delete(f"/v1/files/{file_id}")
    for batch_id in first_keys_objects["batches"]:
        other_client.post(f"/v1/batches/{batch_id}/cancel")
        other_client.post(f"/v1/batches/{batch_id}/retry")
        other_client.post(f"/v1/batches/{batch_id}/pause")
        other_client.post(f"/v1/batches/{batch_id}/priority", {"priority": 99}, format="json")

    # then every file is still there with its bytes, and no batch moved or gained a child
    for file_id in first_keys_objects["files"]:
        assert client_api.get(f"/v1/files/{file_id}").status_code == 200
        content = client_api.get(f"/v1/files/{file_id}/content")
        assert content.status_code == 200 and b"".join(content.streaming_content)
    ended, running = first_keys_objects["batches"]
    assert client_api.get(f"/v1/batches/{ended}").json()["status"] == "completed"
    assert client_api.get(f"/v1/batches/{running}").json()["status"] == "in_progress"
    assert not Batch.objects.filter(parent_id__in=first_keys_objects["batches"]).exists()
    assert not Batch.objects.filter(paused=True).exists()
    assert not Batch.objects.filter(priority=99).exists()


def test_another_keys_file_cannot_start_a_batch(other_client, first_keys_objects, model):
    input_file_id = first_keys_objects["files"][0]
    response = other_client.post(
        "/v1/batches",
        {
            "input_file_id": input_file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        format="json",
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("not_found", "input_file_id")
    assert not Batch.objects.exclude(id__in=first_keys_objects["batches"]).exists()


def test_lists_never_show_another_keys_objects(
    client_api, other_client, first_keys_objects, upload
):
    # given the second key has one file of its own
    own = upload(b"mine\n", purpose="user_data", filename="mine.txt", client=other_client)

    # then its lists hold only that, in every order, purpose filter and cursor
    files = other_client.get("/v1/files").json()
    assert [f["id"] for f in files["data"]] == [own["id"]]
    assert other_client.get("/v1/files?order=asc").json()["data"][0]["id"] == own["id"]
    assert other_client.get("/v1/files?purpose=batch").json()["data"] == []
    assert other_client.get("/v1/batches").json()["data"] == []
    for file_id in first_keys_objects["files"]:
        page = other_client.get(f"/v1/files?after={file_id}").json()
        assert page["data"] == [] and page["has_more"] is False
    for batch_id in first_keys_objects["batches"]:
        assert other_client.get(f"/v1/batches?after={batch_id}").json()["data"] == []
    # and the first key's lists do not show the second key's file
    mine = {f["id"] for f in client_api.get("/v1/files?limit=100").json()["data"]}
    assert own["id"] not in mine
    assert mine == set(first_keys_objects["files"])
