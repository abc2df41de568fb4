"""A record's place in a filter: the selection's ids are read once, then cached until a write
changes what selections hold."""

from __future__ import annotations

from curation import selectors, services
from curation.filters import RecordFilter
from curation.models import Record


def test_position_previous_next_and_counts(upload_dataset):
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


def test_a_cached_selection_costs_no_count_and_every_write_renews_it(
    upload_dataset, django_assert_max_num_queries
):
    # Given a status filter that a first page view has read
    dataset = upload_dataset(5)
    ids = list(Record.objects.in_dataset(dataset.pk).order_by("id").values_list("id", flat=True))
    pending = RecordFilter(dataset=dataset.pk, status="pending")
    assert selectors.position(pending, ids[2]).total == 5
    # When the page is viewed again: the cached version, the cached ids, the record
    with django_assert_max_num_queries(3):
        again = selectors.position(pending, ids[2])
    assert (again.index, again.total, again.next_id) == (3, 5, ids[3])
    # Then a review that takes a record out of the filter shows at once
    record = Record.objects.get(pk=ids[2])
    services.review_record(record, version=1, actor="alice", changes={"status": "accepted"})
    moved = selectors.position(pending, ids[2])
    assert (moved.total, moved.record.pk, moved.index) == (4, ids[0], 1)  # not in it: the first
    # and so do a bulk action, a dataset that grows, and a de-duplication
    services.bulk_action(RecordFilter(dataset=dataset.pk), "accept", actor="bob")
    assert selectors.position(pending, None).total == 0
    other = upload_dataset(5, name="again")  # the same prompts and answers
    merged = services.merge_datasets([dataset, other], "both")
    assert selectors.position(RecordFilter(dataset=merged.pk), None).total == 10
    services.dedupe_dataset(merged)
    assert selectors.position(RecordFilter(dataset=merged.pk), None).total == 5
