"""Each export format line by line; the fine-tuning file against fine-tuning's rules (#12)."""

from __future__ import annotations

import io
import json

import pytest

from batchserver.errors import Invalid
from benchmarks import services as benchmarks
from curation import services
from curation.filters import RecordFilter
from curation.models import Record
from jobs.services.files import get_file, open_file


def file_lines(file_id: str) -> list[dict]:
    with open_file(file_id) as handle:
        return [json.loads(line) for line in handle.read().decode().splitlines()]


def check_finetuning_file(lines: list[dict]) -> list[str]:
    """Issue #12's training-file rules, written from the issue (not from our exporter)."""
    problems = []
    if len(lines) < 10:
        problems.append(f"fewer than 10 examples ({len(lines)})")
    for n, line in enumerate(lines, 1):
        messages = line.get("messages")
        if not isinstance(messages, list) or not messages:
            problems.append(f"line {n}: no messages")
            continue
        if any(m.get("role") not in ("system", "user", "assistant") for m in messages):
            problems.append(f"line {n}: unknown role")
        if not any(m.get("role") == "assistant" for m in messages):
            problems.append(f"line {n}: no assistant turn")
        if any(not isinstance(m.get("content"), str) for m in messages):
            problems.append(f"line {n}: content is not text")
        if set(line) - {"messages"}:
            problems.append(f"line {n}: unexpected keys")
    return problems


def _accept(dataset, count: int) -> list[Record]:
    records = list(Record.objects.in_dataset(dataset.pk).order_by("id")[:count])
    for record in records:
        services.review_record(
            record, version=record.version, actor="ops", changes={"status": "accepted"}
        )
    return records


def test_finetuning_export_takes_accepted_records_with_the_correction(upload_dataset):
    dataset = upload_dataset(14)
    accepted = _accept(dataset, 11)
    first = Record.objects.get(pk=accepted[0].pk)
    services.review_record(
        first, version=first.version, actor="ops", changes={"correction": "corrected 0"}
    )
    result = services.export_dataset(dataset, "finetune")
    stored = get_file(result.file_id)
    assert stored.purpose == "fine-tune" and result.lines == 11
    lines = file_lines(result.file_id)
    assert check_finetuning_file(lines) == []
    assert lines[0] == {
        "messages": [
            {"role": "user", "content": "question 0"},
            {"role": "assistant", "content": "corrected 0"},
        ]
    }
    assert lines[1]["messages"][-1] == {"role": "assistant", "content": "answer 1"}
    assert result.fine_tuning_url == f"/fine-tuning?training_file={result.file_id}"


def test_finetuning_export_of_gold_only_and_of_too_few_examples(upload_dataset):
    dataset = upload_dataset(12)
    _accept(dataset, 3)
    with pytest.raises(Invalid) as few:
        services.export_dataset(dataset, "finetune")
    assert few.value.code == "too_few_examples" and "at least 10" in few.value.message
    with pytest.raises(Invalid) as empty:
        services.export_dataset(dataset, "finetune", only="gold")
    assert empty.value.code == "empty_selection" and empty.value.param == "only"
    services.bulk_action(RecordFilter(dataset=dataset.pk), "gold", actor="ops")
    result = services.export_dataset(dataset, "finetune", only="gold")
    assert result.lines == 12 and check_finetuning_file(file_lines(result.file_id)) == []


def test_finetuning_export_maps_developer_and_skips_tool_turns(db):
    lines = [
        {
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": f"q{i}"},
            ],
            "answer": f"a{i}",
        }
        for i in range(10)
    ] + [{"messages": [{"role": "tool", "content": "x"}], "answer": "t"}]
    dataset = services.create_dataset_from_upload(
        "mixed", io.BytesIO("".join(json.dumps(x) + "\n" for x in lines).encode())
    )
    services.bulk_action(RecordFilter(dataset=dataset.pk), "accept", actor="ops")
    result = services.export_dataset(dataset, "finetune")
    assert (result.lines, result.skipped) == (10, 1)
    exported = file_lines(result.file_id)
    assert check_finetuning_file(exported) == []
    assert exported[0]["messages"][0] == {"role": "system", "content": "be brief"}


def test_gold_set_is_the_benchmark_format_and_goes_straight_into_a_benchmark(upload_dataset):
    dataset = upload_dataset(4)
    record = Record.objects.in_dataset(dataset.pk).order_by("id").first()
    services.review_record(
        record,
        version=1,
        actor="ops",
        changes={"gold": True, "correction": "the reference", "labels": ["x"]},
    )
    result = services.export_dataset(dataset, "gold", benchmark_name="gold from curation")
    assert file_lines(result.file_id) == [
        {
            "id": f"rec-{record.pk}",
            "messages": [{"role": "user", "content": "question 0"}],
            "reference": "the reference",
            "tags": ["x"],
        }
    ]
    bench = benchmarks.get_dataset(result.benchmark_dataset_id)
    assert bench.name == "gold from curation" and bench.item_count == 1


def test_icl_pack_holds_the_k_best_per_label(upload_dataset):
    dataset = upload_dataset(6)
    records = list(Record.objects.in_dataset(dataset.pk).order_by("id"))
    for record, (label, rating) in zip(
        records, [("a", 5), ("a", 2), ("a", 4), ("b", 3), ("b", 1), ("b", 5)], strict=True
    ):
        services.review_record(
            record,
            version=1,
            actor="ops",
            changes={"labels": [label], "rating": rating, "status": "accepted"},
        )
    result = services.export_dataset(dataset, "icl", k=2)
    packs = file_lines(result.file_id)
    assert [(p["label"], p["examples"]) for p in packs] == [("a", 2), ("b", 2)]
    assert packs[0]["messages"] == [
        {"role": "user", "content": "question 0"},
        {"role": "assistant", "content": "answer 0"},
        {"role": "user", "content": "question 2"},
        {"role": "assistant", "content": "answer 2"},
    ]
    assert [m["content"] for m in packs[1]["messages"][::2]] == ["question 5", "question 3"]
    with pytest.raises(Invalid) as bad:
        services.export_dataset(dataset, "icl", k=0)
    assert bad.value.param == "k"


def test_dpo_pairs_prefer_the_correction_and_the_best_rated_answer(upload_dataset):
    a = upload_dataset(2, name="a", model="m1")
    b = services.create_dataset_from_upload(
        "b",
        io.BytesIO(
            json.dumps(
                {
                    "messages": [{"role": "user", "content": "question 1"}],
                    "answer": "worse",
                    "model": "m2",
                }
            ).encode()
        ),
    )
    merged = services.merge_datasets([a, b], "both")
    r0, r1 = Record.objects.in_dataset(a.pk).order_by("id")
    worse = Record.objects.in_dataset(b.pk).get()
    services.review_record(r0, version=1, actor="ops", changes={"correction": "fixed 0"})
    services.review_record(r1, version=1, actor="ops", changes={"rating": 5})
    services.review_record(worse, version=1, actor="ops", changes={"rating": 2})
    lines = file_lines(services.export_dataset(merged, "dpo").file_id)
    prompt0 = {"messages": [{"role": "user", "content": "question 0"}]}
    prompt1 = {"messages": [{"role": "user", "content": "question 1"}]}
    assert sorted(lines, key=json.dumps) == sorted(
        [
            {
                "input": prompt0,
                "preferred_output": [{"role": "assistant", "content": "fixed 0"}],
                "non_preferred_output": [{"role": "assistant", "content": "answer 0"}],
            },
            {
                "input": prompt1,
                "preferred_output": [{"role": "assistant", "content": "answer 1"}],
                "non_preferred_output": [{"role": "assistant", "content": "worse"}],
            },
        ],
        key=json.dumps,
    )


def test_unknown_format_and_empty_dpo_are_refused(upload_dataset):
    dataset = upload_dataset(2)
    with pytest.raises(Invalid) as bad:
        services.export_dataset(dataset, "csv")
    assert bad.value.param == "format"
    with pytest.raises(Invalid) as empty:
        services.export_dataset(dataset, "dpo")
    assert empty.value.code == "empty_selection"


def test_export_split_takes_only_that_split(upload_dataset):
    dataset = upload_dataset(20)
    services.bulk_action(RecordFilter(dataset=dataset.pk), "accept", actor="ops")
    services.split_dataset(dataset, 0.5, seed=3)
    train = services.export_dataset(dataset, "finetune", split="train")
    validation = services.export_dataset(dataset, "finetune", split="validation")
    assert train.lines == validation.lines == 10
    prompts = {
        json.dumps(line["messages"][0])
        for fid in (train.file_id, validation.file_id)
        for line in file_lines(fid)
    }
    assert len(prompts) == 20  # the same example is never in both
