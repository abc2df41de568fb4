"""Writes on datasets: create (from batches, an upload, a benchmark run), add, merge, split,
de-duplicate, delete. Records are shared: a dataset holds them through memberships."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Min
from django.utils import timezone
from django_q.tasks import async_task

from batchserver import fastjson
from batchserver.errors import Conflict, Invalid, NotFound
from batchserver.models import ApiKey
from benchmarks import services as benchmarks
from curation.filters import RecordFilter, select, selections_changed
from curation.models import (
    CONTENT_FIELDS,
    Dataset,
    Membership,
    Record,
    RecordContent,
    RecordQuerySet,
)
from curation.services import building
from curation.services.progress import Progress
from jobs.services import results

SLICE = 2000


def upload_max_lines() -> int:
    return getattr(settings, "CURATION_UPLOAD_MAX_LINES", 50_000)


def get_dataset(dataset_id: object, owner: ApiKey | None = None) -> Dataset:
    """The dataset (only one ``owner`` owns, when given); NotFound otherwise."""
    datasets = Dataset.objects.all() if owner is None else Dataset.objects.filter(owner=owner)
    try:
        return datasets.get(pk=int(str(dataset_id)))
    except (Dataset.DoesNotExist, ValueError):
        raise NotFound("dataset", str(dataset_id), param="dataset") from None


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise Invalid("A dataset needs a name.", param="name", code="missing_name")
    if len(name) > 200:
        raise Invalid("A dataset name has at most 200 characters.", param="name")
    return name


def create_dataset(
    name: str, *, owner: ApiKey | None = None, created_by: str = "", description: str = ""
) -> Dataset:
    """An empty dataset."""
    return Dataset.objects.create(
        name=_check_name(name), owner=owner, created_by=created_by, description=description
    )


def add_members(dataset: Dataset, records: RecordQuerySet) -> int:
    """Put every record ``records`` selects into ``dataset`` in one INSERT … SELECT (records
    already in it are skipped); returns how many were added."""
    try:
        sql, params = records.order_by().values_list("id").query.sql_with_params()
    except EmptyResultSet:  # the selection is empty by construction
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Membership._meta.db_table} (dataset_id, record_id, split) "
            f"SELECT %s, sel.id, '' FROM ({sql}) sel WHERE true "
            "ON CONFLICT (dataset_id, record_id) DO NOTHING",
            (dataset.pk, *params),
        )
        added = max(cursor.rowcount, 0)
    if added:
        selections_changed()
    return added


def _check_batches(batch_ids: Iterable[str], owner: ApiKey | None) -> list[str]:
    ids = [b.strip() for b in batch_ids if b and b.strip()]
    if not ids:
        raise Invalid("Name at least one batch.", param="batch_ids", code="missing_batches")
    for batch_id in ids:
        batch = results.get_batch(batch_id, owner)  # NotFound for another key's batch
        if batch.status not in ("completed", "cancelled", "expired"):
            raise Conflict(
                f"Batch {batch_id} has not ended (status '{batch.status}'); add it once it has.",
                param="batch_ids",
                code="batch_not_ended",
            )
    return list(dict.fromkeys(ids))


def add_batches(dataset: Dataset, batch_ids: Iterable[str], owner: ApiKey | None = None) -> Dataset:
    """Add the answers of ended batches to ``dataset``: checked now, imported by a task (its
    progress shows on the dataset)."""
    ids = _check_batches(batch_ids, owner)
    if not dataset.start_task("import"):
        dataset.refresh_from_db()
        raise Conflict(
            f"Dataset {dataset.pk} is busy ({dataset.task}); try again when it has finished.",
            param="dataset",
            code="dataset_busy",
        )
    transaction.on_commit(lambda: async_task("curation.tasks.import_batches", dataset.pk, ids))
    dataset.refresh_from_db()
    return dataset


def create_dataset_from_batches(
    name: str,
    batch_ids: Iterable[str],
    *,
    owner: ApiKey | None = None,
    created_by: str = "",
    description: str = "",
) -> Dataset:
    """A dataset of the answers of one or more ended batches (imported by a task)."""
    name = _check_name(name)
    ids = _check_batches(batch_ids, owner)
    with transaction.atomic():
        dataset = create_dataset(name, owner=owner, created_by=created_by, description=description)
        return add_batches(dataset, ids, owner)


def import_batch(dataset: Dataset, batch_id: str) -> int:
    """Records of one batch (made once, shared by every dataset), then the memberships.

    Slices of 2,000 rows are committed one by one (progress shows), each one COPY (or INSERT);
    a re-delivered task skips what exists (unique batch line), so it finishes the import.
    """
    known = set(Record.objects.filter(batch_id=batch_id).values_list("custom_id", flat=True))
    pending: list[dict[str, Any]] = []
    for values in building.records_from_batch(batch_id):
        if values["custom_id"] in known:
            continue
        pending.append(values)
        if len(pending) >= SLICE:
            _save_slice(dataset, pending)
            pending = []
    if pending:
        _save_slice(dataset, pending)
    return add_members(dataset, Record.objects.filter(batch_id=batch_id))


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    text = value if isinstance(value, str) else fastjson.dumps(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_ESCAPES)
    return text


def _copy(model: type[models.Model], rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: COPY rows in as text, no model instance or parameter quoting per row."""
    fields = list(model._meta.concrete_fields)
    defaults = {f.attname: f.get_default() for f in fields}
    names = [f.attname for f in fields]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    text = "".join(
        "\t".join(_copy_value(row[n] if n in row else defaults[n]) for n in names) + "\n"
        for row in rows
    )
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
            copy.write(text)


def _split(row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    record = {k: v for k, v in row.items() if k not in CONTENT_FIELDS}
    return record, {k: row[k] for k in CONTENT_FIELDS}


def insert_records(rows: list[dict[str, Any]]) -> list[int]:
    """Write new records and their content (one transaction); returns their ids.

    PostgreSQL: ids are taken from the sequence first, then both tables are COPYed (50,000
    records in seconds). Elsewhere: two bulk INSERTs.
    """
    if not rows:
        return []
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                    [Record._meta.db_table, len(rows)],
                )
                ids = [i for (i,) in cursor.fetchall()]
            records, contents = [], []
            for record_id, row in zip(ids, rows, strict=True):
                record, content = _split(row)
                records.append({**record, "id": record_id})
                contents.append({**content, "record_id": record_id})
            _copy(Record, records)
            _copy(RecordContent, contents)
            return ids
        made = Record.objects.bulk_create(Record(**_split(row)[0]) for row in rows)
        RecordContent.objects.bulk_create(
            RecordContent(record_id=r.pk, **_split(row)[1])
            for r, row in zip(made, rows, strict=True)
        )
        return [r.pk for r in made]


def _save_slice(dataset: Dataset, rows: list[dict[str, Any]]) -> None:
    with transaction.atomic():
        try:
            with transaction.atomic():
                insert_records(rows)
        except IntegrityError:  # another import of the same batch wrote some of them first
            batch_ids = {row["batch_id"] for row in rows}
            known = set(
                Record.objects.filter(batch_id__in=batch_ids).values_list("batch_id", "custom_id")
            )
            insert_records([r for r in rows if (r["batch_id"], r["custom_id"]) not in known])
        Dataset.objects.filter(pk=dataset.pk).update(task_done=dataset.task_done + len(rows))
    dataset.task_done += len(rows)


def import_batches(dataset_id: int, batch_ids: list[str]) -> Dataset | None:
    """The task's work: every batch in turn; the dataset shows progress, then is ready."""
    dataset = Dataset.objects.filter(pk=dataset_id, task="import").first()
    if dataset is None:
        return None  # done already, or deleted
    total = sum(results.get_batch(b).request_completed for b in batch_ids)
    Dataset.objects.filter(pk=dataset_id).update(task_total=total, task_done=0)
    dataset.task_total, dataset.task_done = total, 0
    try:
        for batch_id in batch_ids:
            import_batch(dataset, batch_id)
    except Exception as exc:
        Dataset.objects.filter(pk=dataset_id).update(task="", task_error=str(exc)[:2000])
        raise
    Dataset.objects.filter(pk=dataset_id).update(task="", task_done=total)
    _analyze()
    dataset.refresh_from_db()
    return dataset


def _analyze() -> None:
    """Fresh planner statistics after a bulk load: without them PostgreSQL guesses a handful of
    rows and filters on 50,000 records take a nested loop instead of a hash join."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Record._meta.db_table}, {Membership._meta.db_table}")


def create_dataset_from_upload(
    name: str,
    lines: IO[bytes] | Iterable[bytes],
    *,
    owner: ApiKey | None = None,
    created_by: str = "",
    description: str = "",
) -> Dataset:
    """A dataset from an uploaded JSONL (every bad line named; nothing saved then)."""
    name = _check_name(name)
    rows = building.records_from_upload(lines, upload_max_lines())
    with transaction.atomic():
        dataset = create_dataset(name, owner=owner, created_by=created_by, description=description)
        ids = []
        for start in range(0, len(rows), SLICE):
            ids.extend(insert_records(rows[start : start + SLICE]))
        Membership.objects.bulk_create(
            (Membership(dataset=dataset, record_id=i) for i in ids), batch_size=SLICE
        )
        selections_changed()
    return dataset


def create_dataset_from_run(run_id: object, *, name: str = "", created_by: str = "") -> Dataset:
    """A dataset of every answer of a benchmark run (its batches, staff only)."""
    batch_ids = [b for b in benchmarks.run_batch_ids(run_id) if b]
    if not batch_ids:
        raise Conflict(
            f"Benchmark run {run_id} has no batch yet.", param="run_id", code="run_not_started"
        )
    return create_dataset_from_batches(
        name or f"benchmark run {run_id}", batch_ids, created_by=created_by
    )


def check_merge(datasets: list[Dataset], name: str) -> str:
    if len(datasets) < 2:
        raise Invalid("Merge needs at least two datasets.", param="dataset_ids")
    return _check_name(name)


def merge_datasets(
    datasets: list[Dataset],
    name: str,
    *,
    owner: ApiKey | None = None,
    created_by: str = "",
    progress: Progress | None = None,
) -> Dataset:
    """A new dataset with the records of all of ``datasets`` (each record once)."""
    name = check_merge(datasets, name)
    merged = create_dataset(name, owner=owner, created_by=created_by)
    fill_merged(merged, [d.pk for d in datasets], progress)
    return merged


def fill_merged(merged: Dataset, source_ids: list[int], progress: Progress | None = None) -> int:
    """Add the records of the datasets ``source_ids`` to ``merged``, slice by slice of record
    ids (each slice one INSERT … SELECT, committed: progress shows, a re-run skips what is in);
    returns how many records were added."""
    members = Membership.objects.filter(dataset_id__in=source_ids)
    total = members.count()
    done = added = 0
    lowest = 0
    while True:
        # The record id that ends this slice: the SLICE-th membership above the last one.
        window = members.filter(record_id__gt=lowest).order_by("record_id")
        top = next(iter(window.values_list("record_id", flat=True)[SLICE - 1 : SLICE]), None)
        span = window if top is None else window.filter(record_id__lte=top)
        found = add_members(merged, Record.objects.filter(id__in=span.values("record_id")))
        added += found
        done = total if top is None else min(total, done + SLICE)
        if progress:
            progress(done, total)
        if top is None:
            return added
        lowest = top


def add_selection(dataset: Dataset, flt: RecordFilter, owner: ApiKey | None = None) -> int:
    """The bulk action "add to dataset": every record the filter selects."""
    return add_members(dataset, select(flt, owner))


def check_split(validation_fraction: float) -> None:
    if not 0 < validation_fraction < 1:
        raise Invalid(
            "validation_fraction must be between 0 and 1 (exclusive).",
            param="validation_fraction",
        )


def split_dataset(
    dataset: Dataset, validation_fraction: float, seed: int = 0, progress: Progress | None = None
) -> dict[str, int]:
    """Mark each membership train or validation, at random with ``seed`` (repeatable).

    Written slice by slice in id order, each committed (progress shows); a split cut short
    is finished by running it again with the same seed.
    """
    check_split(validation_fraction)
    ids = list(dataset.memberships.order_by("record_id").values_list("id", flat=True))
    if len(ids) < 2:
        raise Invalid("A split needs at least two records.", param="dataset", code="too_small")
    shuffled = list(ids)
    random.Random(seed).shuffle(shuffled)
    cut = max(1, round(len(ids) * validation_fraction))
    validation = set(shuffled[:cut])
    ids.sort()
    for start in range(0, len(ids), SLICE):
        part = ids[start : start + SLICE]
        with transaction.atomic():
            for split, chosen in (
                (Membership.Split.VALIDATION, [i for i in part if i in validation]),
                (Membership.Split.TRAIN, [i for i in part if i not in validation]),
            ):
                Membership.objects.filter(id__in=chosen).exclude(split=split).update(split=split)
        if progress:
            progress(min(len(ids), start + SLICE), len(ids))
    return {"train": len(ids) - cut, "validation": cut}


def dedupe_dataset(dataset: Dataset, progress: Progress | None = None) -> int:
    """Remove all but the first record of each identical prompt + answer; returns the removed.

    The duplicates are found in one query, then removed slice by slice (each committed:
    progress shows; a re-run finds what is left).
    """
    members = Membership.objects.filter(dataset=dataset)
    firsts = (
        members.order_by()
        .values("record__content_hash")
        .annotate(first=Min("record_id"))
        .values("first")
    )
    doomed = list(members.exclude(record_id__in=firsts).values_list("id", flat=True))
    if progress:
        progress(0, len(doomed))
    for start in range(0, len(doomed), SLICE):
        with transaction.atomic():
            Membership.objects.filter(id__in=doomed[start : start + SLICE]).delete()
            selections_changed()
        if progress:
            progress(min(len(doomed), start + SLICE), len(doomed))
    return len(doomed)


def delete_dataset(dataset: Dataset) -> None:
    """Delete a dataset; its records stay while another dataset holds them."""
    with transaction.atomic():
        record_ids = Membership.objects.filter(dataset=dataset).values("record_id")
        orphans = list(
            Record.objects.filter(id__in=record_ids)
            .exclude(id__in=Membership.objects.exclude(dataset=dataset).values("record_id"))
            .values_list("id", flat=True)
        )
        dataset.delete()
        for start in range(0, len(orphans), SLICE):
            Record.objects.filter(id__in=orphans[start : start + SLICE]).delete()
        selections_changed()


def mark_deleted_batches() -> int:
    """Mark records whose batch is gone (kept, shown as such); returns how many were marked."""
    ids = set(
        Record.objects.filter(batch_deleted=False)
        .exclude(batch_id="")
        .values_list("batch_id", flat=True)
        .distinct()
    )
    gone = ids - results.existing_batch_ids(ids)
    if not gone:
        return 0
    return Record.objects.filter(batch_id__in=gone).update(batch_deleted=True)


def stamp() -> str:
    return timezone.now().strftime("%Y%m%d-%H%M%S")
