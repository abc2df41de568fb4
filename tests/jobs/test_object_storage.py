"""Files on an S3-compatible object store: a real server (moto, on 127.0.0.1) behind a proxy
that can break a transfer in the middle.

Uploads, output and error files and downloads go through the store; large files travel in
parts and are read back as a stream; downloads may be redirected to a presigned URL; and a
store that fails mid-upload publishes nothing and loses nothing: the upload answers 503 and can
be sent again, a batch whose output cannot be stored stays ``finalizing`` and completes once
the store is back, with every line exactly once.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import httpx
import pytest
from django.conf import settings as django_settings

from batchserver.models import ApiKey
from jobs import tasks
from jobs.models import Batch, File
from models_registry.services import register_model
from tests.conftest import FAKE_MODEL, jsonl, request_line
from tests.object_store import FlakyProxy, moto_server, new_bucket

pytest.importorskip("moto.server")
pytest.importorskip("storages.backends.s3")

MB = 1024 * 1024
LINES = 300
FAILING = {7, 150, 299}


@pytest.fixture(scope="module")
def moto_url():
    with moto_server() as url:
        yield url


@pytest.fixture
def s3(moto_url):
    return new_bucket(moto_url)


@pytest.fixture
def proxy(moto_url):
    flaky = FlakyProxy(int(moto_url.rsplit(":", 1)[1]))
    yield flaky
    flaky.close()


@pytest.fixture
def on_s3(settings, s3, proxy):
    """The default storage is the object store, reached through the proxy."""
    settings.S3_MULTIPART_CHUNK_BYTES = 5 * MB  # the S3 minimum part size
    settings.S3_MAX_CONCURRENCY = 2
    settings.S3_MAX_ATTEMPTS = 2
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "batchserver.object_storage.ObjectStorage",
            "OPTIONS": s3.options(proxy.url),
        },
    }
    return s3


def _lines(count: int = LINES) -> list[dict]:
    return [
        request_line(i, content=f"q {i} [[fail]]" if i in FAILING else f"q {i}")
        for i in range(count)
    ]


def _big_input(megabytes: float) -> bytes:
    """A valid batch input of about ``megabytes`` MB (long prompts)."""
    text = "lorem ipsum dolor sit amet " * 37  # about 1 kB
    count = int(megabytes * MB / 1100)
    return jsonl([request_line(i, content=f"{i} {text}") for i in range(count)])


def _content(client_api, file_id: str) -> bytes:
    response = client_api.get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200, response
    return b"".join(response.streaming_content)


def _local_files() -> list[Path]:
    return [p for p in Path(django_settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def test_a_batch_runs_with_every_file_on_the_object_store(
    on_s3, create_batch, client_api, django_capture_on_commit_callbacks
):
    # when a batch with a failing line runs end to end
    batch = create_batch(_lines(20))

    # then its input, output and error files are objects in the bucket, nothing on local disk
    assert batch["status"] == "completed", batch
    keys = on_s3.keys()
    for file_id in (batch["input_file_id"], batch["output_file_id"], batch["error_file_id"]):
        stored = File.objects.get(pk=file_id)
        key = f"batchserver/{stored.content.name}"
        assert key in keys
        # and each downloads through the API byte for byte as stored
        assert _content(client_api, file_id) == on_s3.read(key)
    assert len(keys) == 3
    assert _local_files() == []
    output = [json.loads(x) for x in _content(client_api, batch["output_file_id"]).splitlines()]
    assert sorted(x["custom_id"] for x in output) == sorted(
        f"req-{i}" for i in range(20) if i not in FAILING
    )

    # and deleting a file removes its object once the delete is committed
    with django_capture_on_commit_callbacks(execute=True):
        assert client_api.delete(f"/v1/files/{batch['error_file_id']}").status_code == 200
    assert len(on_s3.keys()) == 2


def test_a_large_file_goes_up_in_parts_and_comes_back_as_a_stream(on_s3, upload, client_api):
    content = _big_input(12)

    # when a 12 MB file is uploaded
    file = upload(content)

    # then it is one object, sent as a multipart upload (its ETag says how many parts)
    (key,) = on_s3.keys()
    assert on_s3.read(key) == content
    etag = on_s3.client().head_object(Bucket=on_s3.bucket, Key=key)["ETag"].strip('"')
    assert etag.endswith("-3"), etag  # 5 + 5 + 2 MB

    # and reading it back (a download, the validation's line by line) holds a few MB at most
    tracemalloc.start()
    try:
        received = 0
        for piece in client_api.get(f"/v1/files/{file['id']}/content").streaming_content:
            received += len(piece)
        _, download_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        stored = File.objects.get(pk=file["id"])
        with stored.content.open("rb") as handle:
            lines = sum(1 for _ in handle)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == len(content)
    assert lines == content.count(b"\n")
    assert download_peak < 4 * MB, download_peak
    assert read_peak < 4 * MB, read_peak


def test_downloads_can_redirect_to_a_presigned_url(on_s3, settings, upload, client_api):
    settings.FILE_DOWNLOAD_REDIRECT = True
    content = jsonl(_lines(3))
    file = upload(content, filename="my input.jsonl")

    # when the content is asked for
    response = client_api.get(f"/v1/files/{file['id']}/content")

    # then the answer sends the client to the store, which serves the bytes as an attachment
    assert response.status_code == 302
    fetched = httpx.get(response["Location"])
    assert fetched.status_code == 200
    assert fetched.content == content
    assert fetched.headers["content-disposition"].startswith("attachment")
    assert "my input.jsonl" in fetched.headers["content-disposition"]
    # without our key: the URL itself is the (short-lived) permission
    assert "X-Amz-Signature" in response["Location"]


def test_a_store_failing_mid_upload_stores_nothing_and_the_upload_can_be_sent_again(
    on_s3, proxy, upload
):
    content = _big_input(12)

    # given a store that breaks after 6 MB of the upload went through
    proxy.break_after(6 * MB)

    # when a file is uploaded
    answer = upload(content, expect=503)

    # then the client is told to try again, and nothing is registered or visible in the bucket
    assert answer["error"]["code"] == "storage_unavailable"
    assert proxy.cut_at_least_once
    assert not File.objects.exists()
    assert on_s3.keys() == []

    # and once the store is back the same upload is stored whole
    proxy.heal()
    file = upload(content)
    (key,) = on_s3.keys()
    assert on_s3.read(key) == content
    assert File.objects.get(pk=file["id"]).bytes == len(content)


def test_a_store_failing_while_output_is_published_publishes_nothing_then_completes(
    on_s3, proxy, upload, client_api, django_capture_on_commit_callbacks
):
    register_model(FAKE_MODEL)
    file = upload(jsonl(_lines()))
    (input_key,) = on_s3.keys()

    # given a store that breaks once a few kB more have been sent to it (the output's upload)
    proxy.break_after(4000)

    # when the batch runs to its end
    with django_capture_on_commit_callbacks(execute=True):
        created = client_api.post(
            "/v1/batches",
            {
                "input_file_id": file["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
            format="json",
        ).json()

    # then it stays finalizing and says why; no output file is registered or visible
    batch = Batch.objects.get(pk=created["id"])
    assert batch.status == "finalizing", batch.note
    assert batch.note.startswith(Batch.FINALIZE_FAILED_NOTE) and "object store" in batch.note
    assert proxy.cut_at_least_once
    assert not File.objects.filter(purpose="batch_output").exists()
    assert on_s3.keys() == [input_key]
    leftovers = list(Path(django_settings.FILE_UPLOAD_TEMP_DIR).rglob(f".{batch.id}_*"))
    assert leftovers == []

    # and while the store is still down, the tick publishes nothing either
    tasks.tick()
    batch.refresh_from_db()
    assert batch.status == "finalizing"
    assert on_s3.keys() == [input_key]

    # and once it is back, the next tick completes the batch with every line exactly once
    proxy.heal()
    tasks.tick()
    batch.refresh_from_db()
    assert batch.status == "completed", batch.note
    ids = []
    for file_id in (batch.output_file_id, batch.error_file_id):
        ids += [json.loads(x)["custom_id"] for x in _content(client_api, file_id).splitlines()]
    assert sorted(ids) == sorted(f"req-{i}" for i in range(LINES))
    assert len(on_s3.keys()) == 3


@pytest.mark.cluster
def test_web_and_worker_processes_share_files_through_the_store(transactional_db, s3, tmp_path):
    """The settings a deployment uses (STORAGE_BACKEND=s3 …), in real processes."""
    import openai

    from tests.cluster import running_cluster

    register_model(FAKE_MODEL)
    raw_key = ApiKey.issue("s3")[1]
    with running_cluster(tmp_path, **s3.environment()) as cluster:
        client = openai.OpenAI(base_url=f"{cluster.url}/v1", api_key=raw_key, max_retries=0)
        upload = client.files.create(file=("in.jsonl", jsonl(_lines(12))), purpose="batch")
        batch = client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        deadline = time.monotonic() + 60
        while batch.status not in ("completed", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            batch = client.batches.retrieve(batch.id)
        assert batch.status == "completed", cluster.diagnostics()
        output = client.files.content(batch.output_file_id).text
        assert len(output.splitlines()) == 12 - len(FAILING & set(range(12)))
    assert len(s3.keys()) == 3  # input, output, error: all in the bucket
