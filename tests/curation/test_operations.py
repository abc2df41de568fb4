"""Long operations show progress: export, merge, split and de-duplicate run off the request
(a task, one at a time per dataset) with done / total and an ETA on the dataset, keep their
outcome there, and take a progress callback when run inline (the management commands' bars)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from batchserver.errors import Conflict, Invalid
from curation import services
from curation.filters import RecordFilter
from curation.models import Dataset
from curation.services.progress import DatasetProgress
from tests.curation.test_exports import file_lines


def _run(capture, start, *args, **kwargs) -> Dataset:
    """Start an operation; its task runs inline once the request's transaction commits."""
    with capture(execute=True):
        dataset = start(*args, **kwargs)
    dataset.refresh_from_db()
    return dataset


def test_an_export_started_from_the_page_runs_as_a_task_and_keeps_its_file(
    upload_dataset, django_capture_on_commit_callbacks
):
    dataset = upload_dataset(12)
    services.bulk_action(RecordFilter(dataset=dataset.pk), "accept", actor="ops")
    done = _run(django_capture_on_commit_callbacks, services.start_export, dataset, "finetune")
    assert (done.task, done.task_error, done.task_done, done.task_total) == ("", "", 12, 12)
    result = done.task_result
    assert (result["task"], result["format"], result["lines"]) == ("export", "finetune", 12)
    assert len(file_lines(result["file_id"])) == 12
    assert result["fine_tuning_url"] == f"/fine-tuning?training_file={result['file_id']}"


def test_a_refused_export_ends_with_its_message_and_bad_parameters_are_refused_at_once(
    upload_dataset, django_capture_on_commit_callbacks
):
    dataset = upload_dataset(12)
    done = _run(django_capture_on_commit_callbacks, services.start_export, dataset, "finetune")
    assert done.task == "" and "Nothing to export" in done.task_error
    with pytest.raises(Invalid) as bad:
        services.start_export(dataset, "finetune", only="some")
    assert bad.value.param == "only"
    dataset.refresh_from_db()
    assert dataset.task == ""  # nothing was started


def test_one_operation_at_a_time_per_dataset(upload_dataset):
    dataset = upload_dataset(4)
    services.start_dedupe(dataset)  # its task waits for the commit that never comes here
    with pytest.raises(Conflict) as busy:
        services.start_split(Dataset.objects.get(pk=dataset.pk), 0.5)
    assert busy.value.code == "dataset_busy" and "dedupe" in busy.value.message


def test_merge_split_and_dedupe_as_tasks_keep_their_outcome(
    upload_dataset, django_capture_on_commit_callbacks
):
    a, b = upload_dataset(10, name="a"), upload_dataset(10, name="b")
    merged = _run(django_capture_on_commit_callbacks, services.start_merge, [a, b], "both")
    assert merged.task_result == {"task": "merge", "records": 20}
    assert merged.memberships.count() == 20 and merged.name == "both"
    deduped = _run(django_capture_on_commit_callbacks, services.start_dedupe, merged)
    assert deduped.task_result == {"task": "dedupe", "removed": 10}
    split = _run(django_capture_on_commit_callbacks, services.start_split, deduped, 0.2, 1)
    assert split.task_result == {"task": "split", "train": 8, "validation": 2}
    assert (split.task_done, split.task_total) == (10, 10)


def test_progress_callbacks_count_up_to_the_total(upload_dataset, monkeypatch):
    monkeypatch.setattr("curation.services.datasets.SLICE", 7)
    monkeypatch.setattr("curation.services.progress.EVERY", 5)
    a, b = upload_dataset(12, name="a"), upload_dataset(12, name="b")
    services.bulk_action(RecordFilter(dataset=a.pk), "accept", actor="ops")
    for run in (
        lambda p: services.merge_datasets([a, b], "m", progress=p),
        lambda p: services.export_dataset(a, "finetune", progress=p),
        lambda p: services.split_dataset(a, 0.25, progress=p),
        lambda p: services.dedupe_dataset(Dataset.objects.get(name="m"), progress=p),
    ):
        seen: list[tuple[int, int]] = []
        run(lambda done, total, seen=seen: seen.append((done, total)))
        assert len(seen) >= 2, seen
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # never backwards
        assert seen[-1][0] == seen[-1][1] > 0  # ends at the total


def test_a_claim_whose_operation_went_silent_can_be_taken_over(upload_dataset, settings):
    # given a dataset claimed by an export that reported progress a moment ago
    settings.CURATION_TASK_STALE_SECONDS = 600
    dataset = upload_dataset(2)
    assert dataset.start_task("export", total=100)
    DatasetProgress(dataset)(10, 100)
    other = Dataset.objects.get(pk=dataset.pk)

    # then a second operation is refused while the first one lives
    assert not other.start_task("split")

    # when the first one's process dies and nothing is reported for longer than the limit
    Dataset.objects.filter(pk=dataset.pk).update(
        task_reported_at=timezone.now() - timedelta(seconds=601)
    )

    # then the dataset can be claimed again, from zero
    assert other.start_task("split")
    other.refresh_from_db()
    assert (other.task, other.task_done) == ("split", 0)


def test_the_eta_follows_the_pace_so_far(upload_dataset):
    dataset = upload_dataset(2)
    assert dataset.start_task("export", total=100)
    assert dataset.task_eta_seconds is None  # nothing done yet: unknown
    Dataset.objects.filter(pk=dataset.pk).update(
        task_started_at=timezone.now() - timedelta(seconds=10)
    )
    dataset.refresh_from_db()
    DatasetProgress(dataset)(25, 100)
    dataset.refresh_from_db()
    assert (dataset.task_done, dataset.task_total) == (25, 100)
    assert 29 <= dataset.task_eta_seconds <= 31  # 10 s for 25: 30 s for the other 75


def test_the_page_shows_a_running_operation_with_its_eta_then_its_result(
    staff_client, upload_dataset, django_capture_on_commit_callbacks
):
    dataset = upload_dataset(12)
    dataset.start_task("export", total=100)
    Dataset.objects.filter(pk=dataset.pk).update(
        task_done=25, task_started_at=timezone.now() - timedelta(seconds=10)
    )
    page = staff_client.get("/curation").content.decode()
    assert 'hx-trigger="every 2s"' in page  # the table polls while it runs
    assert "export 25/100" in page and 'aria-valuenow="25"' in page
    assert "about 30 s left" in page or "about 29 s left" in page
    Dataset.objects.filter(pk=dataset.pk).update(task="")
    services.bulk_action(RecordFilter(dataset=dataset.pk), "accept", actor="ops")
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            "/curation",
            {
                "action": "export",
                "dataset": dataset.pk,
                "format": "finetune",
                "csrfmiddlewaretoken": staff_client.cookies["csrftoken"].value,
            },
        )
    page = staff_client.get("/curation").content.decode()
    assert "is being exported" in page
    assert 'data-result="export"' in page and "Exported 12 line(s)" in page
    assert 'hx-trigger="every 2s"' not in page  # done: no more polling


def test_the_commands_show_a_progress_bar(upload_dataset, capsys, tmp_path):
    a, b = upload_dataset(12, name="a"), upload_dataset(12, name="b")
    services.bulk_action(RecordFilter(dataset=a.pk), "accept", actor="ops")
    output = tmp_path / "a.jsonl"
    call_command("curation_export", str(a.pk), format="finetune", output=str(output))
    out, err = capsys.readouterr()
    assert "12 line(s) in file file-" in out
    assert "export a" in err and "100%" in err and "12/12" in err  # the tqdm bar
    assert [json.loads(line)["messages"][-1]["role"] for line in output.read_text().splitlines()]
    call_command("curation_merge", "--dataset", str(a.pk), "--dataset", str(b.pk), "--name", "both")
    out, err = capsys.readouterr()
    assert "'both': 24 record(s)" in out and "merge into both" in err and "100%" in err
    merged = Dataset.objects.get(name="both")
    call_command("curation_dedupe", str(merged.pk))
    out, err = capsys.readouterr()
    assert "12 duplicate(s) removed" in out and "100%" in err
    call_command("curation_split", str(merged.pk), validation_fraction=0.25)
    out, err = capsys.readouterr()
    assert "9 train, 3 validation" in out and "100%" in err
    with pytest.raises(CommandError, match="Nothing to export"):
        call_command("curation_export", str(b.pk), format="finetune")
    # a command's operation is on the dataset like the page's: its outcome, and one at a time
    a.refresh_from_db()
    assert (a.task, a.task_result["task"], a.task_result["lines"]) == ("", "export", 12)
    b.refresh_from_db()
    assert b.task == "" and "Nothing to export" in b.task_error
    assert b.start_task("dedupe")
    with pytest.raises(CommandError, match="busy"):
        call_command("curation_split", str(b.pk))
