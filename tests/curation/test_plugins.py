"""Plugins in curation: a rating plugin scores records; a plugin export format sits beside ours."""

from __future__ import annotations

import json

import pytest

from batchserver.errors import Conflict
from curation import services
from curation.models import Record
from jobs.services.files import open_file
from plugins import testing
from plugins.types import ExportFormat, Score


def length_rate(answer: str) -> list[Score]:
    return [Score("short", 1.0 if len(answer) < 20 else 0.0, raw=len(answer), scale="chars")]


def csv_formats() -> list[ExportFormat]:
    def write(records, stream) -> None:
        stream.write(b"id,final_answer\n")
        for record in records:
            stream.write(f"{record['id']},{record['final_answer']}\n".encode())

    return [ExportFormat("answers-csv", "Answers as CSV", "csv", "text/csv", write)]


def test_a_rating_plugin_scores_every_record_of_a_dataset(
    upload_dataset, django_capture_on_commit_callbacks
):
    dataset = upload_dataset(3)
    with pytest.raises(Conflict) as none:
        services.start_scoring(dataset)
    assert none.value.code == "no_rating_plugin"
    with testing.installed(testing.make_plugin("len-rater", hooks={"rate": length_rate})):
        with django_capture_on_commit_callbacks(execute=True):
            services.start_scoring(dataset)
    dataset.refresh_from_db()
    assert dataset.task == "" and dataset.task_done == 3
    scores = Record.objects.in_dataset(dataset.pk).first().plugin_scores
    assert scores == [
        {
            "name": "short",
            "value": 1.0,
            "raw": 8.0,
            "scale": "chars",
            "explanation": "",
            "plugin": "len-rater",
        }
    ]


def test_a_plugin_export_format_is_offered_and_writes_the_file(upload_dataset):
    dataset = upload_dataset(2)
    with testing.installed(
        testing.make_plugin("csv-export", hooks={"export_formats": csv_formats})
    ):
        offered = {f["id"]: f for f in services.available_formats()}
        assert offered["plugin:answers-csv"]["plugin"] == "csv-export"
        assert {"finetune", "icl", "gold", "dpo"} <= set(offered)
        result = services.export_dataset(dataset, "plugin:answers-csv")
    assert result.filename.endswith(".csv") and result.lines == 2
    with open_file(result.file_id) as handle:
        text = handle.read().decode()
    ids = sorted(Record.objects.values_list("id", flat=True))
    assert text == f"id,final_answer\n{ids[0]},answer 0\n{ids[1]},answer 1\n"
    json.dumps(result.as_dict())  # the API answers it as JSON
