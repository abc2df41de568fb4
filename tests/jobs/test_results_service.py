"""The read service other apps use: a batch's rows, prompts, answers, usage per model."""

from __future__ import annotations

import pytest

from batchserver.errors import NotFound
from batchserver.models import ApiKey
from jobs.services import results
from tests.conftest import FAKE_MODEL, request_line


def test_rows_come_in_input_order_with_prompt_answer_and_latency(create_batch):
    batch = create_batch([request_line(i, content=f"q{i}") for i in range(3)])
    rows = list(results.iter_results(batch["id"]))
    assert [r.custom_id for r in rows] == ["req-0", "req-1", "req-2"]
    assert all(r.status == "completed" and r.latency_ms is not None for r in rows)
    assert results.prompt_messages(rows[1].body) == [{"role": "user", "content": "q1"}]
    assert results.answer_text(rows[1].response_body) == "echo: q1"


def test_a_failed_line_has_no_answer_text(create_batch):
    batch = create_batch([request_line(0, content="[[fail]]"), request_line(1)])
    failed = list(results.iter_results(batch["id"], statuses=["failed"]))
    assert [r.custom_id for r in failed] == ["req-0"]
    assert results.answer_text(failed[0].response_body) is None


def test_get_batch_hides_another_keys_batch(create_batch, other_key):
    batch = create_batch([request_line(0)])
    assert results.get_batch(batch["id"]).id == batch["id"]
    with pytest.raises(NotFound):
        results.get_batch(batch["id"], owner=other_key[0])


def test_usage_per_model_sums_batches_requests_and_tokens(create_batch):
    create_batch([request_line(i) for i in range(2)])
    create_batch([request_line(0)])
    usage = results.model_usage()[FAKE_MODEL]
    assert (usage["batches"], usage["requests"], usage["completed"]) == (2, 3, 3)
    assert usage["output_tokens"] > 0 and usage["last_used_at"] is not None


def test_completions_prompt_becomes_one_user_message():
    assert results.prompt_messages('{"prompt": "hi"}') == [{"role": "user", "content": "hi"}]


def test_the_console_key_is_created_once_and_is_internal(db):
    first = ApiKey.console_key()
    assert first.internal and ApiKey.console_key().pk == first.pk
    assert ApiKey.objects.filter(internal=True).count() == 1
