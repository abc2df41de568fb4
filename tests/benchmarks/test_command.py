"""``manage.py run_benchmark``: starts a run, follows it, prints the figures per model."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from models_registry.services import register_model
from tests.benchmarks.conftest import dataset_jsonl


@pytest.fixture
def models(transactional_db):
    # transactional: the command's commits run the inline tasks (Q_CLUSTER sync) at once
    register_model("fake-a")
    register_model("fake-b")


def test_the_command_runs_a_benchmark_and_prints_each_model(models, tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(dataset_jsonl(5))
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "run_benchmark",
        "--dataset",
        str(path),
        "--model",
        "fake-a",
        "--model",
        "fake-b",
        "--repetitions",
        "2",
        "--max-tokens",
        "8",
        stdout=out,
        stderr=err,
    )
    text = out.getvalue()
    assert "benchmark run" in text and ": completed" in text
    assert "fake-a: completed; 10/10 requests" in text and "fake-b: completed" in text
    assert "repetition 2 (batch_" in text and "tok/s" in text


def test_the_command_names_an_unknown_model(models):
    with pytest.raises(CommandError, match="Unknown model 'nope'"):
        call_command(
            "run_benchmark",
            "--dataset",
            "builtin/arithmetic",
            "--model",
            "nope",
            stdout=io.StringIO(),
        )


def test_the_command_reports_a_bad_dataset_file_by_line(models, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"messages": []}\n')
    with pytest.raises(CommandError, match="line 1"):
        call_command(
            "run_benchmark", "--dataset", str(path), "--model", "fake-a", stdout=io.StringIO()
        )


def test_the_command_refuses_an_empty_dataset_file(models, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(CommandError, match="empty"):
        call_command(
            "run_benchmark", "--dataset", str(path), "--model", "fake-a", stdout=io.StringIO()
        )
