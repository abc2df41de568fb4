"""Reads for the pages and the API: dataset progress, a record's neighbours in a filter, and
the analytics of the enhanced workbench (ratings per model, agreement, lengths, labels)."""

from __future__ import annotations

import hashlib
import zlib
from array import array
from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, Q
from django.db.models.functions import Length, TruncDate

from batchserver.models import ApiKey
from curation.filters import RecordFilter, select, selections_version
from curation.models import Dataset, Event, Judgement, Membership, Record, RecordQuerySet
from curation.services.review import event_labels

REVIEWED = (
    ~Q(record__status="pending") | Q(record__rating__isnull=False) | Q(record__thumb__isnull=False)
)


def datasets(owner: ApiKey | None = None) -> list[Dataset]:
    queryset = Dataset.objects.all() if owner is None else Dataset.objects.filter(owner=owner)
    return list(queryset.select_related("owner"))


@dataclass
class Progress:
    total: int = 0
    reviewed: int = 0
    accepted: int = 0
    rejected: int = 0
    gold: int = 0
    train: int = 0
    validation: int = 0

    @property
    def percent(self) -> int:
        return int(100 * self.reviewed / self.total) if self.total else 0

    def as_dict(self) -> dict[str, int]:
        return {**self.__dict__, "percent": self.percent}


def progress(dataset_ids: list[int]) -> dict[int, Progress]:
    """Per dataset: records, reviewed, accepted, rejected, gold and the split, in one query."""
    rows = (
        Membership.objects.filter(dataset_id__in=dataset_ids)
        .values("dataset_id")
        .annotate(
            total=Count("id"),
            reviewed=Count("id", filter=REVIEWED),
            accepted=Count("id", filter=Q(record__status="accepted")),
            rejected=Count("id", filter=Q(record__status="rejected")),
            gold=Count("id", filter=Q(record__gold=True)),
            train=Count("id", filter=Q(split="train")),
            validation=Count("id", filter=Q(split="validation")),
        )
    )
    found = {i: Progress() for i in dataset_ids}
    for row in rows:
        dataset_id = row.pop("dataset_id")
        found[dataset_id] = Progress(**row)
    return found


@dataclass
class Position:
    """Where a record sits in a filter's selection (ordered by id)."""

    record: Record | None
    index: int  # 1-based
    total: int
    previous_id: int | None
    next_id: int | None


SELECTION_SECONDS = 300  # a cached selection lives this long at most
# A review is kept in the history (``Event``) in its own transaction: records with an event
# after the cached ids were read are checked against the filter again, and so are those of the
# last RECHECK_EVENTS events before (a short review still in flight then commits later). Bulk
# actions and dataset changes renew the selections version instead (a new read).
RECHECK_EVENTS = 200
RECHECK_AT_MOST = 2000  # more changed records than this: read the selection again


def selection_ids(flt: RecordFilter, owner: ApiKey | None = None) -> array[int]:
    """The ids of the records ``flt`` selects, in order: read once per filter, then taken
    from the cache and brought up to date with the records reviewed since (few, by the
    history's index), until a bulk action or a dataset change renews the selections version.

    Paging through 50,000 records then costs a binary search and one record read per page,
    instead of a count over the join of records and memberships on every view.
    """
    identity = repr((sorted(flt.as_params().items()), owner.pk if owner else None))
    key = (
        "curation:ids:" + hashlib.sha256(f"{selections_version()}|{identity}".encode()).hexdigest()
    )
    found = cache.get(key)
    ids: array[int] = array("q")
    if found is not None:
        packed, seen = found
        ids.frombytes(zlib.decompress(packed))
        newest = _recheck(ids, flt, owner, seen)
        if newest is not None:
            if newest != seen:
                cache.set(key, (zlib.compress(ids.tobytes(), 1), newest), SELECTION_SECONDS)
            return ids
        ids = array("q")
    # The newest event first: a review committed while the ids are read is checked next time.
    seen = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    # One client-side fetch: 50,000 ids are 400 kB, and a server-side cursor outside a
    # transaction would be materialised by the server first (WITH HOLD).
    ids.extend(select(flt, owner).order_by("id").values_list("id", flat=True))
    cache.set(key, (zlib.compress(ids.tobytes(), 1), seen), SELECTION_SECONDS)
    return ids


def _recheck(ids: array[int], flt: RecordFilter, owner: ApiKey | None, seen: int) -> int | None:
    """Put in or take out of ``ids`` the records reviewed since event ``seen`` (and just
    before); returns the newest event id, or None when so many changed that a read is cheaper."""
    events = list(Event.objects.filter(id__gt=seen - RECHECK_EVENTS).values_list("id", "record_id"))
    changed = {record_id for _, record_id in events}
    if len(changed) > RECHECK_AT_MOST:
        return None
    if changed:
        selected = set(select(flt, owner).filter(id__in=changed).values_list("id", flat=True))
        for record_id in sorted(changed):
            at = bisect_left(ids, record_id)
            held = at < len(ids) and ids[at] == record_id
            if held and record_id not in selected:
                del ids[at]
            elif not held and record_id in selected:
                ids.insert(at, record_id)
    return max((i for i, _ in events), default=seen)


def position(flt: RecordFilter, record_id: int | None, owner: ApiKey | None = None) -> Position:
    """The record ``record_id`` (else the first of the selection) and its neighbours."""
    ids = selection_ids(flt, owner)
    if not ids:
        return Position(None, 0, 0, None, None)
    at = bisect_left(ids, record_id) if record_id is not None else 0
    if at >= len(ids) or ids[at] != record_id:
        at = 0  # not in the selection: its first record
    record = Record.objects.select_related("content").filter(pk=ids[at]).first()
    if record is None:  # deleted by a write the cache has not heard of yet
        return Position(None, 0, 0, None, None)
    return Position(
        record,
        at + 1,
        len(ids),
        ids[at - 1] if at > 0 else None,
        ids[at + 1] if at + 1 < len(ids) else None,
    )


CHOICES_SECONDS = 30  # the filter's model and label choices may lag this much


def models_of(records: RecordQuerySet) -> list[str]:
    return sorted(set(records.order_by().values_list("model", flat=True).distinct()))


def labels_of(records: RecordQuerySet, limit: int = 200) -> list[str]:
    """The labels in use (for the filter's choices)."""
    seen: set[str] = set()
    for text in records.exclude(labels="").order_by().values_list("labels", flat=True).distinct():
        seen.update(x for x in text.split(",") if x)
        if len(seen) >= limit:
            break
    return sorted(seen)


def filter_choices() -> dict[str, list[str]]:
    """Models and labels in use, for the workbench's filter (cached: a scan of every record)."""
    found = cache.get("curation:choices")
    if found is None:
        everything = Record.objects.all()
        found = {"models": models_of(everything), "labels": labels_of(everything)}
        cache.set("curation:choices", found, CHOICES_SECONDS)
    return found


def rating_distribution(records: RecordQuerySet) -> dict[str, list[int]]:
    """Per model: how many records got each rating 1–5."""
    out: dict[str, list[int]] = defaultdict(lambda: [0] * 5)
    rows = (
        records.filter(rating__isnull=False)
        .order_by()
        .values("model", "rating")
        .annotate(n=Count("id"))
    )
    for row in rows:
        out[row["model"] or "(none)"][row["rating"] - 1] = row["n"]
    return dict(sorted(out.items()))


@dataclass
class Agreement:
    """Between reviewers of the same records: how often their judgements match."""

    records: int  # records judged by two reviewers or more
    rating: float | None  # share of reviewer pairs with the same rating
    status: float | None
    pairs: dict[tuple[str, str], tuple[int, int]]  # (a, b) → (pairs rated by both, same)


DECIDED = "NOT IN ('', 'pending')"


def agreement(records: RecordQuerySet) -> Agreement:
    """Counted by the database: judgements joined to themselves per record (a bulk action
    writes one judgement per record, so a selection can hold 100,000 of them)."""
    try:
        sql, params = records.order_by().values("id").query.sql_with_params()
    except EmptyResultSet:  # a key without datasets
        return Agreement(0, None, None, {})
    table = Judgement._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.reviewer, b.reviewer, "
            "COUNT(*) FILTER (WHERE a.rating IS NOT NULL AND b.rating IS NOT NULL), "
            "COUNT(*) FILTER (WHERE a.rating = b.rating), "
            f"COUNT(*) FILTER (WHERE a.status {DECIDED} AND b.status {DECIDED}), "
            f"COUNT(*) FILTER (WHERE a.status = b.status AND a.status {DECIDED}) "
            f"FROM {table} a JOIN {table} b "
            "ON b.record_id = a.record_id AND a.reviewer < b.reviewer "
            f"WHERE a.record_id IN ({sql}) GROUP BY a.reviewer, b.reviewer",
            params,
        )
        rows = cursor.fetchall()
        cursor.execute(
            f"SELECT COUNT(*) FROM (SELECT record_id FROM {table} WHERE record_id IN ({sql}) "
            "GROUP BY record_id HAVING COUNT(*) > 1) judged_twice",
            params,
        )
        (multi,) = cursor.fetchone()
    rating_pairs = sum(r[2] for r in rows)
    status_pairs = sum(r[4] for r in rows)
    return Agreement(
        multi,
        sum(r[3] for r in rows) / rating_pairs if rating_pairs else None,
        sum(r[5] for r in rows) / status_pairs if status_pairs else None,
        {(a, b): (n, same) for a, b, n, same, _, _ in sorted(rows) if n},
    )


def histogram(values: list[int], buckets: int = 10) -> tuple[list[str], list[float | None]]:
    """Equal-width buckets over the values' range: labels and counts."""
    if not values:
        return [], []
    low, high = min(values), max(values)
    width = max(1, -(-(high - low + 1) // buckets))
    counts = Counter((v - low) // width for v in values)
    n = (high - low) // width + 1
    labels = [f"{low + i * width}–{low + (i + 1) * width - 1}" for i in range(n)]
    return labels, [float(counts.get(i, 0)) for i in range(n)]


def lengths(records: RecordQuerySet) -> tuple[list[int], list[int]]:
    """Answer lengths (characters) and output tokens of every record."""
    rows = (
        records.order_by()
        .annotate(chars=Length("content__answer"))
        .values_list("chars", "output_tokens")
    )
    chars, tokens = [], []
    for c, t in rows.iterator(chunk_size=5000):
        chars.append(c or 0)
        tokens.append(t or 0)
    return chars, tokens


def labels_over_time(records: RecordQuerySet) -> dict[str, list[tuple[date, int]]]:
    """Per label, how many times it was added each day (from the history)."""
    per: dict[str, Counter] = defaultdict(Counter)
    events = (
        Event.objects.filter(record__in=records.values("id"), field="labels")
        .annotate(day=TruncDate("at"))
        .only("before", "after", "at")
    )
    for event in events.iterator(chunk_size=5000):
        added, _ = event_labels(event)
        for label in added:
            per[label][event.day] += 1  # type: ignore[attr-defined]
    return {label: sorted(days.items()) for label, days in sorted(per.items())}


def worst_rated(records: RecordQuerySet, limit: int = 10) -> list[Record]:
    return list(
        records.filter(Q(rating__isnull=False) | Q(thumb=-1))
        .select_related("content")
        .order_by("rating", "thumb", "id")[:limit]
    )


def analytics(flt: RecordFilter, owner: ApiKey | None = None) -> dict[str, Any]:
    """Everything the enhanced workbench charts, for the records a filter selects."""
    records = select(flt, owner)
    chars, tokens = lengths(records)
    return {
        "count": len(chars),
        "ratings": rating_distribution(records),
        "agreement": agreement(records),
        "chars": histogram(chars),
        "tokens": histogram(tokens),
        "labels": labels_over_time(records),
        "worst": worst_rated(records),
    }
