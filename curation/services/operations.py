"""Long dataset operations off the request: export, merge, split, de-duplicate.

A page starts one: the dataset is claimed for it (one operation at a time: a second one is
refused while it runs), a django-q2 task runs it, and its progress (done of total, from which
the page shows an ETA) is written on the dataset as it goes; the outcome (an export's file, the
split's counts, how many duplicates went) stays on the dataset for the page to show. The API
and the management commands run the same services inline, with a progress callback of their
own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django_q.tasks import async_task

from batchserver.errors import Conflict, DomainError
from batchserver.models import ApiKey
from curation.models import Dataset
from curation.services import datasets, exports
from curation.services.progress import DatasetProgress, Progress

OPERATIONS = ("export", "merge", "split", "dedupe")


def _claim(dataset: Dataset, task: str) -> None:
    if not dataset.start_task(task):
        dataset.refresh_from_db()
        raise Conflict(
            f"Dataset '{dataset.name}' is busy ({dataset.task}); try again when it has finished.",
            param="dataset",
            code="dataset_busy",
        )


def _start(dataset: Dataset, task: str, params: dict[str, Any]) -> Dataset:
    _claim(dataset, task)
    transaction.on_commit(
        lambda: async_task("curation.tasks.run_operation", dataset.pk, task, params)
    )
    return dataset


def start_export(
    dataset: Dataset,
    fmt: str,
    *,
    only: str | None = None,
    split: str = "",
    k: int = 3,
    benchmark_name: str = "",
) -> Dataset:
    """Export ``dataset`` in a task (bad parameters are refused now, before it starts)."""
    exports.check_export(fmt, k, only, split)
    params = {"fmt": fmt, "only": only, "split": split, "k": k, "benchmark_name": benchmark_name}
    return _start(dataset, "export", params)


def start_split(dataset: Dataset, validation_fraction: float, seed: int = 0) -> Dataset:
    datasets.check_split(validation_fraction)
    return _start(dataset, "split", {"validation_fraction": validation_fraction, "seed": seed})


def start_dedupe(dataset: Dataset) -> Dataset:
    return _start(dataset, "dedupe", {})


def start_merge(
    sources: list[Dataset], name: str, *, owner: ApiKey | None = None, created_by: str = ""
) -> Dataset:
    """A new dataset, filled with the records of ``sources`` by a task (its progress shows)."""
    with transaction.atomic():
        merged = datasets.create_dataset(
            datasets.check_merge(sources, name), owner=owner, created_by=created_by
        )
        return _start(merged, "merge", {"sources": [d.pk for d in sources]})


def _export(dataset: Dataset, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    found = exports.export_dataset(dataset, **params, progress=progress)
    return {"format": params["fmt"], **found.as_dict()}


def _merge(dataset: Dataset, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    return {"records": datasets.fill_merged(dataset, params["sources"], progress)}


def _split(dataset: Dataset, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    return datasets.split_dataset(
        dataset, params["validation_fraction"], params["seed"], progress=progress
    )


def _dedupe(dataset: Dataset, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    return {"removed": datasets.dedupe_dataset(dataset, progress=progress)}


RUNNERS: dict[str, Callable[[Dataset, dict[str, Any], Progress], dict[str, Any]]] = {
    "export": _export,
    "merge": _merge,
    "split": _split,
    "dedupe": _dedupe,
}


def _run_claimed(
    dataset: Dataset, task: str, params: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Run ``task`` on the dataset claimed for it; its outcome (or why not) stays on it."""
    try:
        result = RUNNERS[task](dataset, params, progress)
    except DomainError as exc:
        dataset.end_task(error=exc.message)
        raise
    except BaseException as exc:  # Ctrl-C in a command too: the dataset is not left busy
        dataset.end_task(error=f"The {task} failed: {exc!r}")
        raise
    outcome = {"task": task, **result}
    dataset.end_task(result=outcome)
    return outcome


def run_operation(dataset_id: int, task: str, params: dict[str, Any]) -> Dataset | None:
    """The task's work; nothing if the dataset is no longer claimed for ``task``.

    A refusal (an empty selection, say) ends the operation with its message on the dataset;
    anything else also fails the task, so the worker's log has the traceback.
    """
    dataset = Dataset.objects.filter(pk=dataset_id, task=task).first()
    if dataset is None or task not in RUNNERS:
        return None
    try:
        _run_claimed(dataset, task, params, DatasetProgress(dataset))
    except DomainError:
        pass  # the message is on the dataset
    return dataset


def run_here(
    dataset: Dataset, task: str, params: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Run an operation in this process (a management command), claimed as a task would be:
    refused while another runs, its progress on the dataset (the page shows it) and to
    ``progress``; returns the outcome, raises the refusal."""
    _claim(dataset, task)
    on_page = DatasetProgress(dataset)

    def both(done: int, total: int) -> None:
        on_page(done, total)
        progress(done, total)

    return _run_claimed(dataset, task, params, both)


def merge_here(
    sources: list[Dataset], name: str, progress: Progress, *, created_by: str = ""
) -> Dataset:
    """``merge_datasets`` for a command: the new dataset shows the merge's progress."""
    merged = datasets.create_dataset(datasets.check_merge(sources, name), created_by=created_by)
    run_here(merged, "merge", {"sources": [d.pk for d in sources]}, progress)
    return merged
