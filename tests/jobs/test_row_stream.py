"""Validation streams rows into PostgreSQL while it reads the file (lifecycle.RowStream).

The COPY stays open across blocks; a registry lookup in the middle of the file must pause it,
and a COPY the server refuses must fail the validation with nothing stored.
"""

from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import Batch, BatchRequest
from jobs.services import lifecycle
from tests.conftest import jsonl, request_line

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("rows are streamed with PostgreSQL's COPY")
    monkeypatch.setattr(lifecycle, "INSERT_BATCH", 3)  # a COPY is open across several blocks


@pytest.fixture
def writes(monkeypatch):
    seen: list[str] = []
    original = lifecycle.RowStream.write

    def spy(self, text):
        seen.append(text)
        original(self, text)

    monkeypatch.setattr(lifecycle.RowStream, "write", spy)
    return seen


def new_batch(api_key, upload, lines) -> Batch:
    file = upload(jsonl(lines))
    return Batch.objects.create(
        owner=api_key[0],
        input_file_id=file["id"],
        endpoint="/v1/chat/completions",
        completion_window="24h",
        expires_at=timezone.now() + timedelta(hours=24),
    )


def test_rows_stream_in_blocks_and_every_line_is_stored_once(validated_batch, writes):
    batch = validated_batch(10)

    assert len(writes) == 4  # blocks of 3, 3, 3 and 1 rows through one stream
    rows = list(batch.requests.order_by("line").values_list("line", "custom_id"))
    assert rows == [(i + 1, f"req-{i}") for i in range(10)]


def test_a_model_met_mid_file_is_looked_up_with_the_stream_paused(validated_batch, settings):
    # given a file whose eighth line names another model (after two blocks went out)
    settings.BATCH_ALLOW_MIXED_MODELS = True
    lines = [request_line(i) for i in range(10)]
    lines[7] = request_line(7, model="other-model")

    # when it validates, the registry lookup for that model runs between two COPYs
    batch = validated_batch(lines)

    # then every row is stored, that one with its model
    assert batch.requests.count() == 10
    assert '"model":"other-model"' in batch.requests.get(line=8).body


def test_a_bad_line_late_in_the_file_fails_the_batch_with_no_row(create_batch):
    lines = [request_line(i) for i in range(10)]
    lines[8] = request_line(8, model="no-such-model")

    batch = create_batch(lines)

    assert batch["status"] == "failed"
    assert [e["line"] for e in batch["errors"]["data"]] == [9]
    assert not BatchRequest.objects.filter(batch_id=batch["id"]).exists()


def test_a_copy_the_server_refuses_raises_and_stores_nothing(api_key, upload, model, monkeypatch):
    # given a second block PostgreSQL cannot read (too few columns)
    blocks = iter(["", "not a row\n"])
    original = lifecycle._copy_block
    monkeypatch.setattr(
        lifecycle, "_copy_block", lambda *args: next(blocks, None) or original(*args)
    )
    batch = new_batch(api_key, upload, [request_line(i) for i in range(10)])

    # when it validates, the feeding thread's error comes back to the caller
    with pytest.raises(psycopg.errors.BadCopyFileFormat):
        lifecycle.validate_and_split(batch)

    # then the batch is still to be validated, and none of its rows is stored
    batch.refresh_from_db()
    assert batch.status == "validating"
    assert not BatchRequest.objects.filter(batch=batch).exists()


def test_a_query_while_rows_stream_in_is_refused_instead_of_waiting(api_key, upload, model):
    # given a stream with a block on its way (the COPY holds the connection)
    batch = new_batch(api_key, upload, [request_line(1)])
    stream = lifecycle.RowStream()
    stream.write(lifecycle._copy_block(batch, [lifecycle.Row(1, "req-1", {"model": "m"})], 0, 10))

    # when this thread queries meanwhile, it is told why instead of waiting forever
    with pytest.raises(RuntimeError, match="pause"):
        Batch.objects.count()

    # then after a pause the row is stored and queries run again
    stream.pause()
    assert batch.requests.count() == 1
