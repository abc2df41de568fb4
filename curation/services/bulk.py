"""Bulk actions on everything a filter selects: label, unlabel, accept, reject, reset, gold.

Each is three statements in one transaction, whatever the number of records: an INSERT … SELECT
that writes one history event per record that changes (before and after computed by the
database); an upsert of the acting reviewer's ``Judgement`` of every record selected (as a
review of each would: agreeing with the current value counts too); then one UPDATE that changes
the records and bumps their versions (an open workbench page then sees its save refused rather
than overwrite the bulk change).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    DateTimeField,
    F,
    Q,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast, Concat, Replace
from django.utils import timezone

from batchserver.errors import Invalid
from batchserver.models import ApiKey
from curation.filters import RecordFilter, select, selections_changed
from curation.models import LABEL_SEP, Event, Judgement, Record, RecordQuerySet
from curation.services.review import clean_label

ACTIONS = ("label", "unlabel", "accept", "reject", "reset", "gold", "ungold")


def _plan(action: str, value: str) -> tuple[str, Q, Any, Any]:
    """(field, which records change, the new value as an expression, its text for the event)."""
    if action in ("accept", "reject", "reset"):
        status = {"accept": "accepted", "reject": "rejected", "reset": "pending"}[action]
        return "status", ~Q(status=status), Value(status), Value(status)
    if action in ("gold", "ungold"):
        gold = action == "gold"
        return "gold", ~Q(gold=gold), Value(gold), Value("true" if gold else "false")
    token = f"{LABEL_SEP}{clean_label(value, 'value')}{LABEL_SEP}"
    if action == "label":
        # Appended, not sorted: "",a → ",a,"; ",b," → ",b,a,". Readers sort (labels_list).
        new = Case(
            When(labels="", then=Value(token)),
            default=Concat(F("labels"), Value(token[1:])),
            output_field=TextField(),
        )
        return "labels", ~Q(labels__contains=token), new, new
    new = Case(
        When(labels=token, then=Value("")),
        default=Replace(F("labels"), Value(token), Value(LABEL_SEP)),
        output_field=TextField(),
    )
    return "labels", Q(labels__contains=token), new, new


def _record_events(records: RecordQuerySet, field: str, after: Any, actor: str, now) -> None:
    before = (
        Cast(field, output_field=TextField())
        if field != "gold"
        else Case(
            When(gold=True, then=Value("true")), default=Value("false"), output_field=TextField()
        )
    )
    rows = records.order_by().annotate(
        ev_actor=Value(actor, output_field=CharField()),
        ev_at=Value(now, output_field=DateTimeField()),
        ev_field=Value(field, output_field=CharField()),
        ev_before=before,
        ev_after=Cast(after, output_field=TextField()),
        ev_bulk=Value(True),
    )
    sql, params = rows.values_list(
        "id", "ev_actor", "ev_at", "ev_field", "ev_before", "ev_after", "ev_bulk"
    ).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Event._meta.db_table} "
            "(record_id, actor, at, field, before, after, bulk) " + sql,
            params,
        )


_FIELD_TYPES = {"status": CharField, "gold": BooleanField, "labels": TextField}


def _record_judgements(
    selected: RecordQuerySet, field: str, changes: Q, new: Any, actor: str, now
) -> None:
    """The actor's judgement of every selected record: ``field`` as the action leaves it."""
    column = field  # status, gold, labels: the same names on records and judgements
    after = Case(When(changes, then=new), default=F(field), output_field=_FIELD_TYPES[field]())
    sql, params = (
        selected.order_by().annotate(j_value=after).values_list("id", "j_value").query
    ).sql_with_params()
    # The other judged fields of a new row: not judged ("" for the NOT NULL status).
    empty = {"status": "''", "labels": "NULL", "gold": "NULL"}
    others = [name for name in empty if name != field]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Judgement._meta.db_table} "
            f"(record_id, reviewer, updated_at, {column}, {', '.join(others)}) "
            f"SELECT sel.id, %s, %s, sel.j_value, {', '.join(empty[n] for n in others)} "
            f"FROM ({sql}) sel WHERE true "
            "ON CONFLICT (record_id, reviewer) DO UPDATE "
            f"SET {column} = EXCLUDED.{column}, updated_at = EXCLUDED.updated_at",
            (actor, now, *params),
        )


def bulk_action(
    flt: RecordFilter,
    action: str,
    *,
    actor: str,
    value: str = "",
    owner: ApiKey | None = None,
) -> int:
    """Apply ``action`` to every record ``flt`` selects; returns how many records changed."""
    if action not in ACTIONS:
        raise Invalid(f"action must be one of {', '.join(ACTIONS)}.", param="action")
    field, changes, new, event_after = _plan(action, value)
    selected = select(flt, owner)
    now = timezone.now()
    stamp: dict[str, Any] = {}
    if field == "status":
        stamp = {"reviewed_by": actor, "reviewed_at": now}
    with transaction.atomic():
        # The rows to change, fixed once: the events and the update see the same set.
        ids = Record.objects.filter(id__in=selected.filter(changes).values("id"))
        try:
            _record_events(ids, field, event_after, actor, now)
        except EmptyResultSet:  # the filter can select nothing (a key without datasets)
            return 0
        # Before the update: the filter may select other records once they have changed.
        _record_judgements(selected, field, changes, new, actor, now)
        changed = ids.update(**{field: new}, version=F("version") + 1, **stamp)
        if changed:
            selections_changed()
    return changed
