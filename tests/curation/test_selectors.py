"""A record's place in a filter: the selection's ids are read once, then cached until a write
changes what selections hold."""

from __future__ import annotations

from curation import selectors, services
from curation.filters import RecordFilter
from curation.models import Event, Record


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


def test_a_cached_selection_costs_no_count_and_follows_every_write(
    upload_dataset, django_assert_max_num_queries
):
    # Given a status filter that a first page view has read
    dataset = upload_dataset(5)
    ids = list(Record.objects.in_dataset(dataset.pk).order_by("id").values_list("id", flat=True))
    pending = RecordFilter(dataset=dataset.pk, status="pending")
    accepted = RecordFilter(dataset=dataset.pk, status="accepted")
    assert selectors.position(pending, ids[2]).total == 5
    assert selectors.position(accepted, None).total == 0
    # When the page is viewed again: no count, no read of the selection
    with django_assert_max_num_queries(5):  # version, ids, events since, record (+ a check)
        again = selectors.position(pending, ids[2])
    assert (again.index, again.total, again.next_id) == (3, 5, ids[3])
    # Then a review that moves a record from one filter to the other shows in both at once
    record = Record.objects.get(pk=ids[2])
    services.review_record(record, version=1, actor="alice", changes={"status": "accepted"})
    moved = selectors.position(pending, ids[2])
    assert (moved.total, moved.record.pk, moved.index) == (4, ids[0], 1)  # not in it: the first
    assert selectors.position(pending, ids[3]).previous_id == ids[1]
    found = selectors.position(accepted, ids[2])
    assert (found.total, found.record.pk) == (1, ids[2])
    # and so do a bulk action, a dataset that grows, and a de-duplication
    services.bulk_action(RecordFilter(dataset=dataset.pk), "accept", actor="bob")
    assert selectors.position(pending, None).total == 0
    other = upload_dataset(5, name="again")  # the same prompts and answers
    merged = services.merge_datasets([dataset, other], "both")
    assert selectors.position(RecordFilter(dataset=merged.pk), None).total == 10
    services.dedupe_dataset(merged)
    assert selectors.position(RecordFilter(dataset=merged.pk), None).total == 5


def test_a_review_committed_after_a_newer_one_is_still_caught(upload_dataset):
    # Given two reviews, the older event's id then free again (as if still uncommitted)
    dataset = upload_dataset(3)
    first, second, third = Record.objects.in_dataset(dataset.pk).order_by("id")
    services.review_record(first, version=1, actor="alice", changes={"note": "a"})
    services.review_record(second, version=1, actor="alice", changes={"note": "b"})
    late = Event.objects.get(record=first)
    late.delete()
    rejected = RecordFilter(dataset=dataset.pk, status="rejected")
    assert selectors.position(rejected, None).total == 0  # read: newest event is second's
    # When the late review commits with its older event id
    Record.objects.filter(pk=third.pk).update(status="rejected")
    Event.objects.create(pk=late.pk, record=third, actor="bob", field="status", after="rejected")
    # Then the cached selection takes it in all the same
    assert selectors.position(rejected, None).record.pk == third.pk
