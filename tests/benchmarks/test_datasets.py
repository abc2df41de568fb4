"""Datasets: upload, every bad line reported by number with nothing saved, shipped ones, files."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.base import ContentFile

from batchserver.errors import Conflict, Invalid, NotFound
from batchserver.models import ApiKey
from benchmarks import datasets, services
from benchmarks.datasets import InvalidDataset
from benchmarks.models import Dataset
from jobs.services.files import create_file
from tests.benchmarks.conftest import dataset_jsonl

GOOD = {"messages": [{"role": "user", "content": "hi"}]}


def test_an_uploaded_dataset_keeps_ids_references_and_tags(db):
    dataset = services.create_dataset_from_upload("six", io.BytesIO(dataset_jsonl(6)))
    assert dataset.item_count == 6 and dataset.source == "upload"
    first = dataset.items.get(index=0)
    assert (first.item_id, first.reference, first.tags) == ("q0", "question 0", ["t"])
    assert first.prompt_text() == "question 0"


def test_missing_id_becomes_the_line_number_and_reference_is_optional(db):
    content = "\n".join([json.dumps(GOOD), "", json.dumps({**GOOD, "reference": 42})]) + "\n"
    dataset = services.create_dataset_from_upload("no-ids", io.BytesIO(content.encode()))
    items = list(dataset.items.order_by("index"))
    assert [i.item_id for i in items] == ["1", "3"]  # line numbers; the blank line is skipped
    assert items[0].reference is None and items[1].reference == "42"


def test_every_bad_line_is_reported_by_number_and_nothing_is_saved(db):
    lines = [
        json.dumps(GOOD),
        "{not json",
        json.dumps({"messages": []}),
        json.dumps({**GOOD, "tags": "x"}),
        json.dumps({**GOOD, "id": "a"}),
        json.dumps({**GOOD, "id": "a"}),
        json.dumps({"messages": [{"role": "robot", "content": "x"}]}),
        json.dumps([1, 2]),
    ]
    with pytest.raises(InvalidDataset) as caught:
        services.create_dataset_from_upload("bad", io.BytesIO("\n".join(lines).encode()))
    numbers = [n for n, _ in caught.value.line_errors]
    assert numbers == [2, 3, 4, 6, 7, 8]
    assert "line 2: not valid JSON" in caught.value.message
    assert "line 6: duplicate id 'a' (line 5)" in caught.value.message
    assert "messages[0].role" in caught.value.message
    assert not Dataset.objects.exists()


def test_an_empty_dataset_is_refused(db):
    with pytest.raises(Invalid, match="empty"):
        services.create_dataset_from_upload("empty", io.BytesIO(b"\n\n"))
    assert not Dataset.objects.exists()


def test_a_name_is_used_once(small_dataset):
    with pytest.raises(Conflict, match="exists"):
        services.create_dataset_from_upload("small", io.BytesIO(dataset_jsonl(1)))


def test_shipped_datasets_have_twenty_prompts_with_exact_answers(db):
    found = {d.name: d for d in services.ensure_builtin_datasets()}
    assert set(found) == {"builtin/arithmetic", "builtin/capitals"}
    for dataset in found.values():
        assert dataset.item_count == 20 and dataset.source == "builtin"
        assert all(item.reference for item in dataset.items.all())
    assert found["builtin/capitals"].items.get(item_id="capital-01").reference == "Paris"
    # created once, found by short name afterwards
    assert services.get_dataset("arithmetic").pk == found["builtin/arithmetic"].pk
    assert Dataset.objects.count() == 2


def test_shipped_files_round_trip_through_the_format():
    items = datasets.builtin_items("builtin/arithmetic")
    again = datasets.parse_jsonl(datasets.to_jsonl(items).splitlines())
    assert [(i.item_id, i.reference) for i in again] == [(i.item_id, i.reference) for i in items]


def test_a_stored_file_becomes_a_dataset(db):
    # given a JSONL file stored by the jobs app (as the curation app stores a gold set)
    stored = create_file(
        ApiKey.console_key(),
        ContentFile(dataset_jsonl(3), name="gold.jsonl"),
        purpose="batch",
        filename="gold.jsonl",
    )
    # when it is turned into a dataset
    dataset = services.create_dataset_from_file(stored.id, "gold")
    # then its prompts are there, and it remembers where it came from
    assert (dataset.item_count, dataset.source, dataset.source_file_id) == (3, "file", stored.id)


def test_an_unknown_file_or_dataset_is_not_found(db):
    with pytest.raises(NotFound):
        services.create_dataset_from_file("file-missing", "x")
    with pytest.raises(NotFound):
        services.get_dataset("no-such-dataset")


def test_a_bad_stored_file_names_its_lines(db):
    stored = create_file(
        ApiKey.console_key(),
        ContentFile(b'{"messages": 1}\n', name="bad.jsonl"),
        purpose="batch",
        filename="bad.jsonl",
    )
    with pytest.raises(InvalidDataset, match="line 1") as caught:
        services.create_dataset_from_file(stored.id, "bad")
    assert caught.value.param == "file_id"
