"""Files API, API keys and the file maintenance commands, as clients and operators see them."""

import io
import os
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from batchserver.models import ApiKey
from jobs.models import File
from tests.conftest import jsonl, make_client, request_line

FILE_FIELDS = {"id", "object", "bytes", "created_at", "filename", "purpose", "status", "expires_at"}


def content_of(response) -> bytes:
    assert response.status_code == 200, response
    return b"".join(response.streaming_content)


def stored_path(file_id: str) -> str:
    return File.objects.get(id=file_id).content.path


def assert_envelope(response, status, code, param=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    assert body["error"]["param"] == param
    assert body["error"]["type"] == "invalid_request_error"
    return body["error"]


# --- Upload, retrieve, content, delete ------------------------------------------------------


def test_upload_answers_the_file_object(upload):
    content = jsonl([request_line(1), request_line(2)])
    file = upload(content, filename="questions.jsonl")

    assert FILE_FIELDS <= set(file)
    assert file["id"].startswith("file-")
    assert file["object"] == "file"
    assert file["bytes"] == len(content)
    assert file["filename"] == "questions.jsonl"
    assert file["purpose"] == "batch"
    assert file["status"] == "processed"
    assert file["expires_at"] is None
    assert abs(file["created_at"] - timezone.now().timestamp()) < 60


def test_retrieve_answers_the_same_object(client_api, upload):
    file = upload(jsonl([request_line(1)]))
    assert client_api.get(f"/v1/files/{file['id']}").json() == file


def test_content_is_byte_identical_to_the_upload(client_api, upload):
    # given bytes a JSON round trip would change (BOM, CRLF, spacing, non-ASCII)
    content = b'\xef\xbb\xbf{"custom_id":"a",  "x": "caf\xc3\xa9"}\r\n\n{"custom_id": "b"}'
    file = upload(content)

    # when the content is downloaded
    response = client_api.get(f"/v1/files/{file['id']}/content")

    # then it is exactly what was sent
    assert content_of(response) == content
    assert "input.jsonl" in response["Content-Disposition"]


def test_content_answers_any_accept_header(client_api, upload):
    file = upload(jsonl([request_line(1)]))
    response = client_api.get(f"/v1/files/{file['id']}/content", HTTP_ACCEPT="application/binary")
    assert content_of(response) == jsonl([request_line(1)])


def test_delete_removes_the_file_and_its_bytes(
    client_api, upload, django_capture_on_commit_callbacks
):
    file = upload(jsonl([request_line(1)]))
    path = stored_path(file["id"])

    with django_capture_on_commit_callbacks(execute=True):
        response = client_api.delete(f"/v1/files/{file['id']}")

    assert response.status_code == 200
    assert response.json() == {"id": file["id"], "object": "file", "deleted": True}
    assert_envelope(client_api.get(f"/v1/files/{file['id']}"), 404, "not_found", "file_id")
    assert_envelope(client_api.get(f"/v1/files/{file['id']}/content"), 404, "not_found", "file_id")
    assert_envelope(client_api.delete(f"/v1/files/{file['id']}"), 404, "not_found", "file_id")
    assert not os.path.exists(path)


def test_missing_file_id(client_api):
    error = assert_envelope(client_api.get("/v1/files/file-nope"), 404, "not_found", "file_id")
    assert "file-nope" in error["message"]


# --- Expiry ----------------------------------------------------------------------------------


def test_expires_after_sets_expires_at(client_api):
    buffer = io.BytesIO(jsonl([request_line(1)]))
    buffer.name = "input.jsonl"
    response = client_api.post(
        "/v1/files",
        {
            "file": buffer,
            "purpose": "batch",
            "expires_after.anchor": "created_at",
            "expires_after.seconds": "7200",
        },
        format="multipart",
    )
    file = response.json()
    assert file["expires_at"] - file["created_at"] == 7200


def test_expires_after_as_the_openai_sdk_sends_it(client_api):
    # The SDK flattens nested multipart fields with brackets: expires_after[seconds]=…
    buffer = io.BytesIO(jsonl([request_line(1)]))
    buffer.name = "input.jsonl"
    response = client_api.post(
        "/v1/files",
        {
            "file": buffer,
            "purpose": "batch",
            "expires_after[anchor]": "created_at",
            "expires_after[seconds]": "3600",
        },
        format="multipart",
    )
    assert response.status_code == 200, response.content
    file = response.json()
    assert file["expires_at"] - file["created_at"] == 3600


def test_expires_after_below_one_hour_is_refused(client_api):
    buffer = io.BytesIO(jsonl([request_line(1)]))
    buffer.name = "input.jsonl"
    response = client_api.post(
        "/v1/files",
        {
            "file": buffer,
            "purpose": "batch",
            "expires_after[anchor]": "created_at",
            "expires_after[seconds]": "60",
        },
        format="multipart",
    )
    assert_envelope(response, 400, "min_value", "expires_after.seconds")


def test_cleanup_command_removes_expired_files(
    client_api, upload, django_capture_on_commit_callbacks
):
    # given one expired file and one that is still valid
    expired = upload(jsonl([request_line(1)]))
    kept = upload(jsonl([request_line(2)]))
    File.objects.filter(id=expired["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    File.objects.filter(id=kept["id"]).update(expires_at=timezone.now() + timedelta(hours=1))
    expired_path, kept_path = stored_path(expired["id"]), stored_path(kept["id"])

    # when the operator runs the clean-up
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("cleanup_expired_files", stdout=out)

    # then the expired file is gone, row and bytes, and the report says what was freed
    assert client_api.get(f"/v1/files/{expired['id']}").status_code == 404
    assert not os.path.exists(expired_path)
    assert client_api.get(f"/v1/files/{kept['id']}").status_code == 200
    assert os.path.exists(kept_path)
    assert f"Removed 1 expired files, {expired['bytes']} bytes freed." in out.getvalue()


def test_cleanup_command_with_nothing_to_do(upload):
    upload(jsonl([request_line(1)]))
    out = StringIO()
    call_command("cleanup_expired_files", stdout=out)
    assert "Removed 0 expired files, 0 bytes freed." in out.getvalue()
    assert File.objects.count() == 1


# --- Listing ---------------------------------------------------------------------------------


@pytest.fixture
def five_files(upload):
    """Five files, oldest first; the third has purpose user_data."""
    return [
        upload(
            jsonl([request_line(i)]),
            purpose="user_data" if i == 2 else "batch",
            filename=f"f{i}.jsonl",
        )["id"]
        for i in range(5)
    ]


def ids(body):
    return [f["id"] for f in body["data"]]


def test_list_is_newest_first_by_default(client_api, five_files):
    body = client_api.get("/v1/files").json()
    assert body["object"] == "list"
    assert ids(body) == five_files[::-1]
    assert body["has_more"] is False
    assert (body["first_id"], body["last_id"]) == (five_files[-1], five_files[0])
    assert FILE_FIELDS <= set(body["data"][0])


def test_list_pages_with_after_and_limit(client_api, five_files):
    # given five files, listed oldest first two at a time
    pages, after = [], ""
    while True:
        body = client_api.get("/v1/files", {"order": "asc", "limit": 2, "after": after}).json()
        pages.append(ids(body))
        assert (body["first_id"], body["last_id"]) == (pages[-1][0], pages[-1][-1])
        if not body["has_more"]:
            break
        after = body["last_id"]

    # then the pages cover every file once, in order
    assert pages == [five_files[0:2], five_files[2:4], five_files[4:5]]


def test_list_descending_after(client_api, five_files):
    body = client_api.get("/v1/files", {"after": five_files[3], "limit": 2}).json()
    assert ids(body) == [five_files[2], five_files[1]]
    assert body["has_more"] is True


def test_list_filters_by_purpose(client_api, five_files):
    assert ids(client_api.get("/v1/files", {"purpose": "user_data"}).json()) == [five_files[2]]
    batch_ids = ids(client_api.get("/v1/files", {"purpose": "batch", "order": "asc"}).json())
    assert batch_ids == [f for i, f in enumerate(five_files) if i != 2]


def test_empty_list(client_api):
    body = client_api.get("/v1/files").json()
    assert body == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


@pytest.mark.parametrize(
    "params, param",
    [({"limit": 0}, "limit"), ({"limit": "x"}, "limit"), ({"order": "up"}, "order")],
)
def test_list_bad_parameters(client_api, params, param):
    assert_envelope(client_api.get("/v1/files", params), 400, "invalid_value", param)


# --- Isolation between keys -------------------------------------------------------------------


def test_another_key_cannot_see_or_touch_a_file(client_api, other_client, upload):
    # given a file of the first key
    file = upload(jsonl([request_line(1)]))

    # when the other key reaches for it, each answer is a plain 404
    for response in (
        other_client.get(f"/v1/files/{file['id']}"),
        other_client.get(f"/v1/files/{file['id']}/content"),
        other_client.delete(f"/v1/files/{file['id']}"),
    ):
        assert_envelope(response, 404, "not_found", "file_id")

    # and it does not list it, even as a page anchor
    assert other_client.get("/v1/files").json()["data"] == []
    assert other_client.get("/v1/files", {"after": file["id"]}).json()["data"] == []

    # then the file is untouched for its owner
    assert content_of(client_api.get(f"/v1/files/{file['id']}/content")) == jsonl([request_line(1)])


def test_each_key_lists_only_its_own_files(client_api, other_client, upload):
    mine = upload(jsonl([request_line(1)]))
    theirs = upload(jsonl([request_line(2)]), client=other_client)
    assert ids(client_api.get("/v1/files").json()) == [mine["id"]]
    assert ids(other_client.get("/v1/files").json()) == [theirs["id"]]


# --- Authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Bearer sk-bs-not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer", "sk-bs-no-scheme"],
)
def test_missing_or_invalid_key_is_401(db, header):
    client = make_client("x")
    if header is None:
        client.credentials()
    else:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/v1/files")
    assert_envelope(response, 401, "invalid_api_key")


def test_revoked_key_is_401(api_key, client_api):
    assert client_api.get("/v1/files").status_code == 200
    api_key[0].revoke()
    assert_envelope(client_api.get("/v1/files"), 401, "invalid_api_key")


def test_expired_key_is_401(db):
    key, raw = ApiKey.issue("old", expires_at=timezone.now() - timedelta(seconds=1))
    assert_envelope(make_client(raw).get("/v1/files"), 401, "invalid_api_key")


def test_unknown_api_path_is_404_envelope(client_api):
    error = assert_envelope(client_api.get("/v1/no-such-thing"), 404, "unknown_url")
    assert "/v1/no-such-thing" in error["message"]


def test_create_api_key_command_prints_a_working_key(db):
    out = StringIO()
    call_command("create_api_key", "--name", "ci", stdout=out)

    raw = out.getvalue().strip().splitlines()[-1]
    assert raw.startswith("sk-bs-") and " " not in raw
    assert make_client(raw).get("/v1/files").status_code == 200
    assert ApiKey.objects.get(name="ci").hashed_key != raw
