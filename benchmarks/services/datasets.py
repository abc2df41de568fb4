"""Writes of benchmark datasets: from an upload, from a stored file, or a shipped one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO

from django.conf import settings
from django.db import IntegrityError, transaction

from batchserver.errors import Conflict, Invalid, NotFound, TooLarge
from benchmarks import datasets
from benchmarks.datasets import ParsedItem
from benchmarks.models import Dataset, DatasetItem
from jobs.services.files import open_file


def max_items() -> int:
    return getattr(settings, "BENCHMARK_DATASET_MAX_ITEMS", 10_000)


def max_bytes() -> int:
    return getattr(settings, "BENCHMARK_DATASET_MAX_BYTES", 50 * 1024 * 1024)


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise Invalid("A dataset needs a name.", param="name", code="missing_name")
    if len(name) > 200:
        raise Invalid("A dataset name has at most 200 characters.", param="name")
    if Dataset.objects.filter(name=name).exists():
        raise Conflict(f"A dataset named '{name}' exists already.", param="name", code="exists")
    return name


def create_dataset(
    name: str,
    items: list[ParsedItem],
    *,
    source: str = Dataset.Source.UPLOAD,
    description: str = "",
    source_file_id: str = "",
) -> Dataset:
    """Save a parsed dataset and its items in one transaction."""
    name = _check_name(name)
    if len(items) > max_items():
        raise TooLarge(
            f"A dataset has at most {max_items()} prompts; this one has {len(items)}.",
            param="file",
        )
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                name=name,
                description=description,
                source=source,
                source_file_id=source_file_id,
                item_count=len(items),
            )
            DatasetItem.objects.bulk_create(
                DatasetItem(
                    dataset=dataset,
                    index=i,
                    item_id=item.item_id,
                    messages=item.messages,
                    reference=item.reference,
                    tags=item.tags,
                )
                for i, item in enumerate(items)
            )
    except IntegrityError:  # the same name saved by someone else meanwhile
        raise Conflict(f"A dataset named '{name}' exists already.", param="name") from None
    return dataset


def _limited(lines: Iterable[bytes], param: str) -> Iterable[bytes]:
    total = 0
    for line in lines:
        total += len(line)
        if total > max_bytes():
            raise TooLarge(f"A dataset file has at most {max_bytes()} bytes.", param=param)
        yield line


def create_dataset_from_upload(
    name: str, uploaded: IO[bytes] | Iterable[bytes], description: str = ""
) -> Dataset:
    """A dataset from an uploaded JSONL file; every bad line is reported and nothing saved."""
    _check_name(name)
    items = datasets.parse_jsonl(_limited(uploaded, "file"))
    return create_dataset(name, items, source=Dataset.Source.UPLOAD, description=description)


def create_dataset_from_file(file_id: str, name: str, description: str = "") -> Dataset:
    """A dataset from a stored file (``file-…``), e.g. a gold set the curation app exported."""
    _check_name(name)
    with open_file(file_id) as handle:
        items = datasets.parse_jsonl(_limited(handle, "file_id"), param="file_id")
    return create_dataset(
        name, items, source=Dataset.Source.FILE, description=description, source_file_id=file_id
    )


def ensure_builtin_datasets() -> list[Dataset]:
    """The shipped datasets, created on first use (their names start with ``builtin/``)."""
    found = []
    for name, (_, description) in datasets.BUILTINS.items():
        dataset = Dataset.objects.filter(name=name).first()
        if dataset is None:
            try:
                dataset = create_dataset(
                    name,
                    datasets.builtin_items(name),
                    source=Dataset.Source.BUILTIN,
                    description=description,
                )
            except Conflict:  # created by another request meanwhile
                dataset = Dataset.objects.get(name=name)
        found.append(dataset)
    return found


def get_dataset(ref: str | int) -> Dataset:
    """A dataset by id or by name (a shipped one is created on first use); NotFound otherwise."""
    text = str(ref).strip()
    if text in datasets.BUILTINS or f"builtin/{text}" in datasets.BUILTINS:
        ensure_builtin_datasets()
        text = text if text in datasets.BUILTINS else f"builtin/{text}"
    queryset = Dataset.objects.all()
    found = queryset.filter(pk=int(text)).first() if text.isdigit() else None
    found = found or queryset.filter(name=text).first()
    if found is None:
        raise NotFound("dataset", text, param="dataset")
    return found


def delete_dataset(dataset: Dataset) -> None:
    """Delete a dataset no run used (a run's dataset stays, so its samples keep their prompts)."""
    if dataset.runs.exists():
        raise Conflict(
            f"Dataset '{dataset.name}' is used by benchmark runs and cannot be deleted.",
            param="dataset",
            code="dataset_in_use",
        )
    dataset.delete()
