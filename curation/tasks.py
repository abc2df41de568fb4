"""django-q2 entry points of curation: they take ids and re-read the rows."""

from __future__ import annotations

from curation import services


def import_batches(dataset_id: int, batch_ids: list[str]) -> str:
    """Import the answers of batches into a dataset; nothing if it is not importing any more."""
    dataset = services.import_batches(dataset_id, batch_ids)
    return f"dataset {dataset_id}: {'imported' if dataset else 'nothing to do'}"


def score_dataset(dataset_id: int) -> str:
    dataset = services.score_dataset(dataset_id)
    return f"dataset {dataset_id}: {'scored' if dataset else 'nothing to do'}"


def run_operation(dataset_id: int, task: str, params: dict) -> str:
    """An export, merge, split or de-duplication started from the page (progress on the row)."""
    dataset = services.run_operation(dataset_id, task, params)
    if dataset is None:
        return f"dataset {dataset_id}: nothing to do"
    return f"dataset {dataset_id}: {task} " + (
        f"refused: {dataset.task_error}" if dataset.task_error else "done"
    )
