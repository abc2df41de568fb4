"""Plugin scores of records: every enabled rating plugin rates each answer (the correction when
there is one); the workbench shows these scores beside the reviewers' ratings."""

from __future__ import annotations

from django.db import transaction
from django_q.tasks import async_task

from batchserver.errors import Conflict
from curation.models import Dataset, Record
from plugins import services as plugins

SLICE = 500


def rating_plugins() -> list[str]:
    return [p["id"] for p in plugins.list_plugins("rating") if p["enabled"]]


def start_scoring(dataset: Dataset) -> Dataset:
    """Score a dataset's records with the enabled rating plugins, in a task (progress shows)."""
    if not rating_plugins():
        raise Conflict(
            "No rating plugin is enabled; enable one on /plugins first.",
            param="dataset",
            code="no_rating_plugin",
        )
    if not dataset.start_task("score", total=dataset.memberships.count()):
        dataset.refresh_from_db()
        raise Conflict(f"Dataset {dataset.pk} is busy ({dataset.task}).", param="dataset")
    transaction.on_commit(lambda: async_task("curation.tasks.score_dataset", dataset.pk))
    dataset.refresh_from_db()
    return dataset


def score_records(records: list[Record]) -> None:
    """Rate each record with every enabled rating plugin and store the scores."""
    for record in records:
        scores = plugins.rate(record.final_answer, prompt=record.prompt)
        record.plugin_scores = [s.as_dict() for s in scores]
    Record.objects.bulk_update(records, ["plugin_scores"])


def score_dataset(dataset_id: int) -> Dataset | None:
    """The task's work, slice by slice, with the dataset's progress updated after each."""
    dataset = Dataset.objects.filter(pk=dataset_id, task="score").first()
    if dataset is None:
        return None
    ids = list(dataset.memberships.order_by("record_id").values_list("record_id", flat=True))
    try:
        for start in range(0, len(ids), SLICE):
            score_records(
                list(
                    Record.objects.select_related("content").filter(
                        id__in=ids[start : start + SLICE]
                    )
                )
            )
            Dataset.objects.filter(pk=dataset_id).update(task_done=min(len(ids), start + SLICE))
    except Exception as exc:
        Dataset.objects.filter(pk=dataset_id).update(task="", task_error=str(exc)[:2000])
        raise
    Dataset.objects.filter(pk=dataset_id).update(task="", task_done=len(ids))
    dataset.refresh_from_db()
    return dataset
