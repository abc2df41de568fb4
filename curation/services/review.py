"""Review of one record: rating, thumbs, labels, correction, gold, status, note.

Each save names the version it was made on; a save on an older version is refused with the
record as it is now (``StaleRecord``), so a second reviewer never silently erases the first.
Every changed field becomes an ``Event`` (who, when, before, after) in the same transaction,
and the reviewer's own rating / thumbs / status is kept in their ``Judgement``.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from batchserver.errors import Conflict, Invalid, NotFound
from batchserver.models import ApiKey
from curation.models import Event, Judgement, Record, RecordContent, labels_list, labels_text
from curation.services.building import search_text

REVIEW_FIELDS = ("rating", "thumb", "labels", "correction", "gold", "status", "note")
JUDGED = ("rating", "thumb", "status", "gold", "labels")  # kept per reviewer (``Judgement``)
LABEL_CHANGES = ("labels", "add_labels", "remove_labels")
MAX_LABEL = 64


class StaleRecord(Conflict):
    """The record changed since the version the save was made on; ``current`` is how it is."""

    default_code = "stale_version"

    def __init__(self, current: Record, version: int) -> None:
        super().__init__(
            f"Record {current.pk} changed since version {version} (now version "
            f"{current.version}, by {current.reviewed_by or current.corrected_by or 'someone'}); "
            "nothing was saved. Review the current version and save again.",
            param="version",
        )
        self.current = current


def get_record(record_id: object, owner: ApiKey | None = None) -> Record:
    try:
        return (
            Record.objects.visible_to(owner).select_related("content").get(pk=int(str(record_id)))
        )
    except (Record.DoesNotExist, ValueError):
        raise NotFound("record", str(record_id), param="record_id") from None


def clean_label(label: object, param: str = "labels") -> str:
    text = str(label).strip() if isinstance(label, str) else ""
    if not text or len(text) > MAX_LABEL or "," in text:
        raise Invalid(
            f"A label is a non-empty text of at most {MAX_LABEL} characters without commas.",
            param=param,
        )
    return text


def _clean(record: Record, changes: dict[str, Any]) -> dict[str, Any]:
    """The stored values of the requested changes (labels as text); ``Invalid`` if one is bad."""
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "rating":
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5
            ):
                raise Invalid("rating must be an integer from 1 to 5, or null.", param="rating")
        elif name == "thumb":
            if value not in (None, 1, -1):
                raise Invalid("thumb must be 1 (up), -1 (down) or null.", param="thumb")
        elif name == "gold":
            if not isinstance(value, bool):
                raise Invalid("gold must be true or false.", param="gold")
        elif name == "status":
            if value not in Record.Status.values:
                raise Invalid("status must be pending, accepted or rejected.", param="status")
        elif name in ("note", "correction"):
            if value is not None and not isinstance(value, str):
                raise Invalid(f"{name} must be a string.", param=name)
            if name == "note":
                value = value or ""
        elif name in ("labels", "add_labels", "remove_labels"):
            if not isinstance(value, list):
                raise Invalid(f"{name} must be a list of strings.", param=name)
            value = [clean_label(v, name) for v in value]
        else:
            raise Invalid(f"Unknown review field '{name}'.", param=name)
        out[name] = value
    labels = set(out.pop("labels", record.label_list))
    labels |= set(out.pop("add_labels", []))
    labels -= set(out.pop("remove_labels", []))
    out["labels"] = labels_text(sorted(labels))
    return out


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _differs(old: Any, new: Any, name: str) -> bool:
    if name == "labels":
        return sorted(labels_list(old)) != sorted(labels_list(new))
    return old != new


def review_record(record: Record, *, version: int, actor: str, changes: dict[str, Any]) -> Record:
    """Apply one reviewer's changes to ``record`` if it is still at ``version``."""
    if not isinstance(version, int) or isinstance(version, bool):
        raise Invalid("version must be the record's version (an integer).", param="version")
    wanted = _clean(record, changes)
    changed = {k: v for k, v in wanted.items() if _differs(getattr(record, k), v, k)}
    if record.version != version:
        raise StaleRecord(record, version)
    now = timezone.now()
    # Labels are always in ``wanted`` (the resulting set); judged only when the save named them.
    judged = {k: wanted[k] for k in JUDGED if k in changes}
    if changes.keys() & set(LABEL_CHANGES):
        judged["labels"] = wanted["labels"]
    with transaction.atomic():
        if changed:
            # Its events tell cached selections which record to check again (no renewal).
            _save(record, version, actor, changed, now)
        if judged:
            # A reviewer who agrees with the current value changes nothing on the record, but
            # their judgement counts for agreement all the same.
            Judgement.objects.update_or_create(
                record=record, reviewer=actor, defaults={**judged, "updated_at": now}
            )
    return record


def _save(record: Record, version: int, actor: str, changed: dict[str, Any], now) -> None:
    events = [
        Event(
            record=record,
            actor=actor,
            at=now,
            field=name,
            before=_as_text(getattr(record, name)),
            after=_as_text(value),
        )
        for name, value in changed.items()
    ]
    stored = dict(changed)
    if "correction" in changed:
        stored.update(corrected_by=actor, corrected_at=now)
    if changed.keys() & {"rating", "thumb", "status"}:
        stored.update(reviewed_by=actor, reviewed_at=now)
    if not record.apply(version, stored):
        raise StaleRecord(Record.objects.get(pk=record.pk), version)
    if "correction" in changed:
        search = search_text(record.messages, record.answer, changed["correction"])
        RecordContent.objects.filter(pk=record.pk).update(search=search)
    Event.objects.bulk_create(events)


def history(record: Record) -> list[Event]:
    return list(record.events.order_by("at", "id"))


def judgements(record: Record) -> list[Judgement]:
    return list(record.judgements.order_by("reviewer"))


def event_labels(event: Event) -> tuple[list[str], list[str]]:
    """Labels an event added and removed (for the labels-over-time chart)."""
    before, after = set(labels_list(event.before or "")), set(labels_list(event.after or ""))
    return sorted(after - before), sorted(before - after)
