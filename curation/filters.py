"""The one definition of "the records a filter selects": the workbench, its bulk actions, the
records API and the exports all turn the same parameters into the same queryset.

Pages cache what a selection holds (``selectors.selection_ids``) under the *selections
version*, which a bulk action and records added to or removed from a dataset renew
(``selections_changed``); a single review is caught up from its history events instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from uuid import uuid4

from django.core.cache import cache
from django.db import transaction

from batchserver.errors import Invalid
from batchserver.models import ApiKey
from curation.models import Record, RecordQuerySet

STATUSES = {s.value for s in Record.Status}


@dataclass(frozen=True)
class RecordFilter:
    """What a filter form or a query string selects; empty fields select everything."""

    dataset: int | None = None
    batch: str = ""
    model: str = ""
    rating: str = ""  # "1".."5", "none", "<=2", ">=4"
    label: str = ""
    status: str = ""
    gold: bool | None = None
    q: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RecordFilter:
        """Parse query parameters; a bad value raises ``Invalid`` naming the parameter."""
        dataset = (params.get("dataset") or "").strip()
        if dataset and not dataset.isdigit():
            raise Invalid("dataset must be a dataset id (a number).", param="dataset")
        rating = (params.get("rating") or "").strip().replace(" ", "")
        if rating and rating != "none":
            digits = rating.lstrip("<>=")
            if not (digits.isdigit() and 1 <= int(digits) <= 5) or rating[: -len(digits)] not in (
                "",
                "<=",
                ">=",
            ):
                raise Invalid("rating must be 1-5, <=N, >=N or none.", param="rating")
        status = (params.get("status") or "").strip()
        if status and status not in STATUSES:
            raise Invalid(f"status must be one of {', '.join(sorted(STATUSES))}.", param="status")
        gold_text = str(params.get("gold") or "").strip().lower()
        if gold_text not in ("", "true", "false", "1", "0", "yes", "no"):
            raise Invalid("gold must be true or false.", param="gold")
        gold = None if not gold_text else gold_text in ("true", "1", "yes")
        return cls(
            dataset=int(dataset) if dataset else None,
            batch=(params.get("batch") or "").strip(),
            model=(params.get("model") or "").strip(),
            rating=rating,
            label=(params.get("label") or "").strip(),
            status=status,
            gold=gold,
            q=(params.get("q") or "").strip(),
        )

    def as_params(self) -> dict[str, str]:
        """The non-empty fields as query parameters (links keep the filter)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value not in (None, ""):
                out[f.name] = str(value).lower() if isinstance(value, bool) else str(value)
        return out

    def is_empty(self) -> bool:
        return not self.as_params()

    def apply(self, records: RecordQuerySet) -> RecordQuerySet:
        if self.dataset is not None:
            records = records.in_dataset(self.dataset)
        if self.batch:
            records = records.filter(batch_id=self.batch)
        if self.model:
            records = records.filter(model=self.model)
        if self.rating == "none":
            records = records.filter(rating__isnull=True)
        elif self.rating.startswith("<="):
            records = records.filter(rating__lte=int(self.rating[2:]))
        elif self.rating.startswith(">="):
            records = records.filter(rating__gte=int(self.rating[2:]))
        elif self.rating:
            records = records.filter(rating=int(self.rating))
        if self.label:
            records = records.with_label(self.label)
        if self.status:
            records = records.filter(status=self.status)
        if self.gold is not None:
            records = records.filter(gold=self.gold)
        if self.q:
            records = records.matching(self.q)
        return records


def select(flt: RecordFilter, owner: ApiKey | None = None) -> RecordQuerySet:
    """The records ``flt`` selects among those ``owner`` may see (None: staff, all)."""
    return flt.apply(Record.objects.visible_to(owner))


SELECTIONS_VERSION = "curation:selections-version"


def selections_changed() -> None:
    """Every cached selection is out of date: call it in the transaction that changed records.

    The version is renewed there (with the database cache, in that transaction: it changes when
    the records do) and once more after the commit (for a cache outside the database); a page
    that read the old version meanwhile stores what it found under a version nobody asks for.
    """
    _renew()
    transaction.on_commit(_renew)


def _renew() -> None:
    cache.set(SELECTIONS_VERSION, uuid4().hex, None)


def selections_version() -> str:
    found = cache.get(SELECTIONS_VERSION)
    if found is None:
        cache.add(SELECTIONS_VERSION, uuid4().hex, None)
        found = cache.get(SELECTIONS_VERSION)
    return str(found)
