"""The JSON API: per-key datasets, filtered pages of records, reviews with versions, bulk
actions, exports downloadable with the openai SDK's Files API, the error envelope."""

from __future__ import annotations

import io

from curation.models import Dataset, Record
from tests.conftest import csrf_token
from tests.curation.conftest import upload_lines


def _make_from_batch(client, batch_id: str, capture, name: str = "mine") -> dict:
    with capture(execute=True):
        response = client.post(
            "/v1/curation/datasets", {"name": name, "batch_ids": [batch_id]}, format="json"
        )
    assert response.status_code == 201, response.content
    return client.get(f"/v1/curation/datasets/{response.json()['id']}").json()


def test_a_key_makes_a_dataset_of_its_batch_and_reviews_a_record(
    client_api, finished_batch, django_capture_on_commit_callbacks
):
    batch = finished_batch(3)
    dataset = _make_from_batch(client_api, batch["id"], django_capture_on_commit_callbacks)
    assert dataset["progress"]["total"] == 3 and dataset["task"] is None
    page = client_api.get("/v1/curation/records", {"dataset": dataset["id"], "limit": 2}).json()
    assert page["has_more"] is True and len(page["data"]) == 2
    rest = client_api.get(
        "/v1/curation/records", {"dataset": dataset["id"], "after": page["last_id"]}
    ).json()
    assert [r["custom_id"] for r in rest["data"]] == ["req-2"] and rest["has_more"] is False
    record = page["data"][0]
    response = client_api.patch(
        f"/v1/curation/records/{record['id']}",
        {"version": record["version"], "rating": 4, "status": "accepted", "labels": ["ok"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["rating"], body["status"], body["labels"], body["version"]) == (
        4,
        "accepted",
        ["ok"],
        2,
    )
    assert body["judgements"] == [
        {
            "reviewer": "key:test",
            "rating": 4,
            "thumb": None,
            "status": "accepted",
            "gold": None,
            "labels": ["ok"],
        }
    ]
    history = client_api.get(f"/v1/curation/records/{record['id']}/history").json()["data"]
    assert {e["field"] for e in history} == {"rating", "status", "labels"}
    assert all(e["actor"] == "key:test" for e in history)


def test_a_stale_version_gets_409_with_the_current_record(upload_dataset, staff_client):
    record = Record.objects.in_dataset(upload_dataset(1).pk).get()
    headers = {"X-CSRFToken": csrf_token(staff_client)}
    url = f"/v1/curation/records/{record.pk}"
    first = staff_client.patch(
        url, {"version": 1, "note": "mine"}, content_type="application/json", headers=headers
    )
    assert first.status_code == 200
    second = staff_client.patch(
        url, {"version": 1, "note": "theirs"}, content_type="application/json", headers=headers
    )
    assert second.status_code == 409
    body = second.json()
    assert body["error"]["param"] == "version" and body["error"]["code"] == "stale_version"
    assert body["current"]["note"] == "mine" and body["current"]["version"] == 2


def test_keys_see_only_their_own_datasets_and_records(
    client_api, other_client, finished_batch, staff_client, django_capture_on_commit_callbacks
):
    batch = finished_batch(2)
    dataset = _make_from_batch(client_api, batch["id"], django_capture_on_commit_callbacks)
    record_id = Record.objects.first().pk
    assert other_client.get("/v1/curation/datasets").json()["data"] == []
    assert other_client.get(f"/v1/curation/datasets/{dataset['id']}").status_code == 404
    assert other_client.get(f"/v1/curation/records/{record_id}").status_code == 404
    assert other_client.get("/v1/curation/records").json()["data"] == []
    bulk = other_client.post(
        "/v1/curation/records/bulk", {"action": "accept", "filter": {}}, format="json"
    )
    assert bulk.json()["changed"] == 0
    # another key cannot make a dataset of this key's batch
    refused = other_client.post(
        "/v1/curation/datasets", {"name": "x", "batch_ids": [batch["id"]]}, format="json"
    )
    assert refused.status_code == 404 and refused.json()["error"]["param"] == "batch_id"
    # staff see everything, through the browsable API too
    assert len(staff_client.get("/v1/curation/datasets").json()["data"]) == 1
    html = staff_client.get("/v1/curation/datasets", headers={"Accept": "text/html"})
    assert html.status_code == 200 and b"Datasets" in html.content


def test_anonymous_is_refused_in_the_envelope(client):
    response = client.get("/v1/curation/datasets")
    assert response.status_code in (401, 403)
    assert "error" in response.json()


def test_bad_input_names_the_parameter(client_api, staff_client):
    bad_upload = io.BytesIO(upload_lines(2) + b"{broken\n")
    bad_upload.name = "bad.jsonl"
    response = client_api.post(
        "/v1/curation/datasets/upload", {"name": "x", "file": bad_upload}, format="multipart"
    )
    body = response.json()["error"]
    assert response.status_code == 400 and body["param"] == "file"
    assert body["lines"][0]["line"] == 3 and "line 3" in body["message"]
    assert not Dataset.objects.exists()
    assert client_api.get("/v1/curation/records", {"rating": "9"}).json()["error"]["param"] == (
        "rating"
    )
    response = client_api.post("/v1/curation/records/bulk", {"action": "explode"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["param"] == "action"


def test_bulk_and_export_then_the_sdk_downloads_the_file(client_api, api_key, settings):
    upload = io.BytesIO(upload_lines(12))
    upload.name = "records.jsonl"
    created = client_api.post(
        "/v1/curation/datasets/upload", {"name": "up", "file": upload}, format="multipart"
    ).json()
    bulk = client_api.post(
        "/v1/curation/records/bulk",
        {"action": "accept", "filter": {"dataset": str(created["id"])}},
        format="json",
    )
    assert bulk.json()["changed"] == 12
    empty = client_api.post(
        f"/v1/curation/datasets/{created['id']}/exports",
        {"format": "finetune", "only": "gold"},
        format="json",
    )
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_selection"
    export = client_api.post(
        f"/v1/curation/datasets/{created['id']}/exports", {"format": "finetune"}, format="json"
    )
    assert export.status_code == 201, export.content
    file_id = export.json()["file_id"]
    content = client_api.get(f"/v1/files/{file_id}/content")
    lines = b"".join(content.streaming_content).decode().splitlines()
    assert len(lines) == 12 and '"role":"assistant"' in lines[0]
    meta = client_api.get(f"/v1/files/{file_id}").json()
    assert meta["purpose"] == "fine-tune"
