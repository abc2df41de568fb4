"""The OpenAI Batch flow through the official ``openai`` SDK, against real server and worker
processes.

Nothing here calls the app in-process: every request goes over HTTP to gunicorn, every batch is
run by the django-q2 worker process (see ``conftest.py``).
"""

from __future__ import annotations

from collections import Counter

import openai
import pytest

from tests.conftest import FAKE_MODEL, jsonl, request_line
from tests.e2e.conftest import (
    ENDPOINT,
    make_openai_client,
    parse_jsonl,
    start_batch,
    upload,
    wait_for_batch,
)

pytestmark = pytest.mark.cluster


def test_batch_round_trip_with_output_and_error_files(openai_client, live_cluster):
    # given a 50-line input file whose line 17 the engine fails
    lines = [
        request_line(i, content=f"question {i}" + (" [[fail]]" if i == 17 else ""))
        for i in range(50)
    ]
    file = upload(openai_client, lines)
    assert (file.object, file.purpose, file.filename) == ("file", "batch", "input.jsonl")
    assert file.bytes == len(jsonl(lines))
    assert openai_client.files.retrieve(file.id).id == file.id
    assert openai_client.files.content(file.id).content == jsonl(lines)

    # when a batch runs over it
    created = openai_client.batches.create(
        input_file_id=file.id,
        endpoint=ENDPOINT,
        completion_window="24h",
        metadata={"project": "e2e"},
    )
    assert created.status == "validating"
    batch = wait_for_batch(openai_client, created.id, live_cluster)

    # then it completes: 49 answers in the output file, the failed line in the error file
    assert batch.status == "completed", batch.errors
    assert (batch.request_counts.total, batch.request_counts.completed) == (50, 49)
    assert batch.request_counts.failed == 1
    assert batch.metadata == {"project": "e2e"}
    assert batch.model == FAKE_MODEL
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    assert batch.created_at <= batch.in_progress_at <= batch.completed_at

    output = parse_jsonl(openai_client.files.content(batch.output_file_id).text)
    errors = parse_jsonl(openai_client.files.content(batch.error_file_id).text)
    seen = Counter(line["custom_id"] for line in output + errors)
    assert seen == Counter(f"req-{i}" for i in range(50))  # every custom_id exactly once
    assert len({line["id"] for line in output + errors}) == 50

    for line in output:
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        assert line["response"]["request_id"]
        number = line["custom_id"].removeprefix("req-")
        answer = line["response"]["body"]["choices"][0]["message"]["content"]
        assert answer == f"echo: question {number}"

    [failed] = errors
    assert failed["custom_id"] == "req-17"
    assert failed["response"]["status_code"] == 400
    assert failed["response"]["body"]["error"]["code"] == "fake_failure"

    # and the usage is the sum of the answers' usage
    usages = [line["response"]["body"]["usage"] for line in output]
    assert batch.usage.input_tokens == sum(u["prompt_tokens"] for u in usages)
    assert batch.usage.output_tokens == sum(u["completion_tokens"] for u in usages)
    assert batch.usage.total_tokens == batch.usage.input_tokens + batch.usage.output_tokens
    assert batch.usage.total_tokens > 0

    # and the result files are listed as batch_output files of this key
    listed = {f.id: f.purpose for f in openai_client.files.list()}
    assert listed[batch.output_file_id] == listed[batch.error_file_id] == "batch_output"
    assert listed[file.id] == "batch"


def test_batches_list_pages_newest_first(openai_client, live_cluster):
    # given five batches of this key
    ids = [
        start_batch(openai_client, [request_line(i), request_line(i + 100)]).id for i in range(5)
    ]
    newest_first = ids[::-1]

    # when listed two at a time through the SDK's auto-pagination
    page = openai_client.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2]
    assert page.has_more is True
    assert [b.id for b in page] == newest_first  # iterating a page walks every later page
    assert [len(p.data) for p in page.iter_pages()] == [2, 2, 1]

    # and by hand with `after`
    walked, after, pages = [], None, 0
    while True:
        kwargs = {"after": after} if after else {}
        page = openai_client.batches.list(limit=2, **kwargs)
        pages += 1
        walked += [b.id for b in page.data]
        if not page.has_more:
            break
        after = page.data[-1].id
    assert (walked, pages) == (newest_first, 3)
    assert openai_client.batches.list(limit=2, after=newest_first[-1]).data == []

    # every batch ends (also so that no worker is busy when the tables are flushed)
    for batch_id in ids:
        assert wait_for_batch(openai_client, batch_id, live_cluster).status == "completed"


def test_cancel_running_batch_keeps_finished_output(openai_client, live_cluster):
    # given 20 requests in chunks of 5, the first request of the second chunk hangs for 4 s
    lines = [
        request_line(i, content=f"question {i}" + (" [[hang]]" if i == 5 else ""))
        for i in range(20)
    ]
    batch = start_batch(openai_client, lines)

    # when it is cancelled while the worker is inside the hanging chunk
    running = wait_for_batch(
        openai_client,
        batch.id,
        live_cluster,
        until=lambda b: b.status == "in_progress" and b.request_counts.completed >= 5,
    )
    assert running.status == "in_progress"
    cancelling = openai_client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None

    # then it ends cancelled: what finished is in the output, the rest is cancelled lines
    final = wait_for_batch(openai_client, batch.id, live_cluster)
    assert final.status == "cancelled"
    assert final.cancelled_at is not None and final.completed_at is None
    counts = final.request_counts
    assert counts.total == 20
    assert 5 <= counts.completed < 20
    assert counts.completed + counts.failed == 20

    output = parse_jsonl(openai_client.files.content(final.output_file_id).text)
    errors = parse_jsonl(openai_client.files.content(final.error_file_id).text)
    assert len(output) == counts.completed and len(errors) == counts.failed
    assert {f"req-{i}" for i in range(5)} <= {line["custom_id"] for line in output}
    assert all(line["response"]["status_code"] == 200 for line in output)
    assert all(line["error"]["code"] == "batch_cancelled" for line in errors)
    assert all(line["response"] is None for line in errors)
    seen = Counter(line["custom_id"] for line in output + errors)
    assert seen == Counter(f"req-{i}" for i in range(20))

    # and a second cancel is refused as a conflict
    with pytest.raises(openai.ConflictError) as refused:
        openai_client.batches.cancel(batch.id)
    assert refused.value.body["code"] == "batch_not_cancellable"


def test_files_delete(openai_client):
    # given an uploaded file
    file = upload(openai_client, [request_line(1)])

    # when it is deleted
    deleted = openai_client.files.delete(file.id)

    # then it is gone for every file call
    assert (deleted.id, deleted.deleted) == (file.id, True)
    with pytest.raises(openai.NotFoundError):
        openai_client.files.retrieve(file.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.files.content(file.id)
    assert file.id not in {f.id for f in openai_client.files.list()}


def test_models_list_and_retrieve(openai_client):
    models = openai_client.models.list()
    assert FAKE_MODEL in [m.id for m in models]
    model = openai_client.models.retrieve(FAKE_MODEL)
    assert (model.id, model.object) == (FAKE_MODEL, "model")
    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.models.retrieve("no-such-model")
    assert missing.value.body["code"] == "not_found"


def test_errors_reach_the_sdk_as_its_exception_classes(
    openai_client, other_openai_client, live_cluster
):
    # another key's batch and file answer exactly like missing ones
    batch = start_batch(openai_client, [request_line(1)])
    with pytest.raises(openai.NotFoundError) as not_found:
        other_openai_client.batches.retrieve(batch.id)
    assert not_found.value.status_code == 404
    assert not_found.value.body["code"] == "not_found"
    assert not_found.value.body["param"] == "batch_id"
    with pytest.raises(openai.NotFoundError):
        other_openai_client.batches.cancel(batch.id)
    with pytest.raises(openai.NotFoundError):
        other_openai_client.files.content(batch.input_file_id)
    assert batch.id not in [b.id for b in other_openai_client.batches.list()]

    # a bad request names its parameter and code
    with pytest.raises(openai.BadRequestError) as bad_window:
        openai_client.batches.create(
            input_file_id=batch.input_file_id, endpoint=ENDPOINT, completion_window="1h"
        )
    assert bad_window.value.body["code"] == "invalid_value"
    assert bad_window.value.body["param"] == "completion_window"
    with pytest.raises(openai.NotFoundError) as no_file:
        openai_client.batches.create(
            input_file_id="file-nope", endpoint=ENDPOINT, completion_window="24h"
        )
    assert no_file.value.body["param"] == "input_file_id"
    with pytest.raises(openai.BadRequestError) as not_jsonl:
        upload(openai_client, [request_line(1)], filename="input.txt")
    assert not_jsonl.value.body["code"] == "invalid_file_format"

    # a wrong key is an authentication error
    with pytest.raises(openai.AuthenticationError) as bad_key:
        make_openai_client(live_cluster, "sk-bs-not-a-key").batches.list()
    assert bad_key.value.body["code"] == "invalid_api_key"

    # an input file that breaks the line rules fails the batch as a whole, naming the line
    broken = start_batch(
        openai_client, [request_line(1), request_line(2, custom_id="req-1"), request_line(3)]
    )
    failed = wait_for_batch(openai_client, broken.id, live_cluster)
    assert failed.status == "failed"
    assert failed.failed_at is not None and failed.output_file_id is None
    [error] = failed.errors.data
    assert (error.code, error.line) == ("duplicate_custom_id", 2)

    assert wait_for_batch(openai_client, batch.id, live_cluster).status == "completed"
