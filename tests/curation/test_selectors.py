"""A record's place in a filter, read in one query for small selections, counted for large."""

from __future__ import annotations

import pytest

from curation import selectors
from curation.filters import RecordFilter
from curation.models import Record


@pytest.mark.parametrize("small", [2000, 2])
def test_position_previous_next_and_counts(upload_dataset, monkeypatch, small):
    monkeypatch.setattr(selectors, "SMALL_SELECTION", small)  # both ways of counting
    dataset = upload_dataset(5)
    ids = list(Record.objects.in_dataset(dataset.pk).order_by("id").values_list("id", flat=True))
    for flt in (RecordFilter(dataset=dataset.pk), RecordFilter(dataset=dataset.pk, q="question")):
        first = selectors.position(flt, None)
        assert (first.record.pk, first.index, first.total) == (ids[0], 1, 5)
        assert (first.previous_id, first.next_id) == (None, ids[1])
        middle = selectors.position(flt, ids[2])
        assert (middle.index, middle.previous_id, middle.next_id) == (3, ids[1], ids[3])
        assert selectors.position(flt, 10**9).record.pk == ids[0]  # unknown: the first
    narrow = selectors.position(RecordFilter(dataset=dataset.pk, q="question 3"), None)
    assert (narrow.record.pk, narrow.total, narrow.next_id) == (ids[3], 1, None)
    assert selectors.position(RecordFilter(q="nothing like it"), None).record is None
