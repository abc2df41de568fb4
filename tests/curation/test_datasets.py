# ruff: noqa: F811
"""Datasets from batches, uploads and benchmark runs; merge, split, de-duplicate, delete."""

from __future__ import annotations

import io
import json

import pytest

from batchserver.errors import Conflict, Invalid, NotFound
from curation import services
from curation.models import Dataset, Membership, Record
from curation.services.building import InvalidUpload
from tests.benchmarks.conftest import run_inline, small_dataset, two_models  # noqa: F401
from tests.curation.conftest import upload_lines


def test_a_dataset_from_a_batch_holds_each_answer_with_its_prompt_and_origin(batch_dataset):
    dataset = batch_dataset(3)
    assert dataset.task == "" and dataset.task_done == dataset.task_total == 3
    records = list(Record.objects.in_dataset(dataset.pk).order_by("custom_id"))
    assert [r.custom_id for r in records] == ["req-0", "req-1", "req-2"]
    first = records[0]
    assert first.messages == [{"role": "user", "content": "question 0"}]
    assert first.answer == "echo: question 0"
    assert first.model == "fake-model" and first.batch_id.startswith("batch_")
    assert first.request_row is not None and first.output_tokens > 0
    assert first.status == "pending" and first.version == 1


def test_adding_the_same_batch_to_a_second_dataset_copies_no_record(
    finished_batch, django_capture_on_commit_callbacks
):
    batch = finished_batch(4)
    with django_capture_on_commit_callbacks(execute=True):
        a = services.create_dataset_from_batches("a", [batch["id"]])
        b = services.create_dataset_from_batches("b", [batch["id"]])
    assert Record.objects.count() == 4
    assert Membership.objects.filter(dataset=a).count() == 4
    assert Membership.objects.filter(dataset=b).count() == 4


def test_a_batch_that_has_not_ended_or_is_anothers_is_refused(
    validated_batch, finished_batch, other_key
):
    running = validated_batch(2)
    with pytest.raises(Conflict) as refused:
        services.create_dataset_from_batches("x", [running.id])
    assert refused.value.param == "batch_ids" and "has not ended" in refused.value.message
    done = finished_batch(1)
    with pytest.raises(NotFound):
        services.create_dataset_from_batches("x", [done["id"]], owner=other_key[0])
    with pytest.raises(Invalid):
        services.create_dataset_from_batches("x", [])
    assert not Dataset.objects.exists()


def test_an_upload_names_every_bad_line_and_saves_nothing(db):
    lines = upload_lines(3) + b"not json\n" + json.dumps({"messages": "x"}).encode() + b"\n"
    with pytest.raises(InvalidUpload) as bad:
        services.create_dataset_from_upload("u", io.BytesIO(lines))
    assert [n for n, _ in bad.value.line_errors] == [4, 5]
    assert "line 4: not valid JSON" in bad.value.message
    assert not Dataset.objects.exists() and not Record.objects.exists()


def test_an_upload_in_the_fine_tuning_format_takes_the_last_assistant_turn(db):
    line = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    dataset = services.create_dataset_from_upload("ft", io.BytesIO(json.dumps(line).encode()))
    record = Record.objects.in_dataset(dataset.pk).get()
    assert record.messages == [{"role": "user", "content": "hi"}] and record.answer == "yo"


def test_merge_split_and_dedupe(upload_dataset):
    a = upload_dataset(10, name="a")
    b = upload_dataset(10, name="b")  # the same 10 prompts and answers: duplicates of a's
    merged = services.merge_datasets([a, b], "merged")
    assert merged.memberships.count() == 20
    assert services.dedupe_dataset(merged) == 10
    assert merged.memberships.count() == 10
    counts = services.split_dataset(merged, 0.2, seed=1)
    assert counts == {"train": 8, "validation": 2}
    assert merged.memberships.filter(split="validation").count() == 2
    assert merged.memberships.filter(split="train").count() == 8
    again = services.split_dataset(merged, 0.2, seed=1)  # repeatable
    assert again == counts
    with pytest.raises(Invalid) as bad:
        services.split_dataset(merged, 1.5)
    assert bad.value.param == "validation_fraction"


def test_deleting_a_dataset_keeps_records_another_dataset_holds(upload_dataset):
    a = upload_dataset(3, name="a")
    merged = services.merge_datasets([a, upload_dataset(2, name="b", prefix="other")], "m")
    services.delete_dataset(a)
    assert Record.objects.count() == 5
    services.delete_dataset(merged)
    assert Record.objects.count() == 2  # b's own


def test_a_record_whose_batch_was_deleted_is_kept_and_marked(batch_dataset):
    from jobs.models import Batch  # the test deletes the batch as an operator would

    dataset = batch_dataset(2)
    Batch.objects.all().delete()
    assert services.mark_deleted_batches() == 2
    records = Record.objects.in_dataset(dataset.pk)
    assert records.count() == 2 and all(r.batch_deleted for r in records)


def test_a_dataset_from_a_benchmark_run_holds_its_answers(
    small_dataset, two_models, run_inline, django_capture_on_commit_callbacks
):
    run = run_inline(small_dataset, ["fake-a", "fake-b"])
    assert run.status == "completed"
    with django_capture_on_commit_callbacks(execute=True):
        dataset = services.create_dataset_from_run(run.pk, name="run answers")
    records = Record.objects.in_dataset(dataset.pk)
    assert records.count() == 12  # 6 prompts x 2 models
    assert sorted(set(records.values_list("model", flat=True))) == ["fake-a", "fake-b"]
    assert records.filter(model="fake-a").first().answer.startswith("echo: question")
    with pytest.raises(NotFound):
        services.create_dataset_from_run(999999)
