"""Every review action and its history; several reviewers; concurrent edits; bulk actions."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from batchserver.errors import Invalid
from curation import selectors, services
from curation.filters import RecordFilter
from curation.models import Event, Judgement, Record


def _review(record: Record, actor: str, **changes) -> Record:
    return services.review_record(record, version=record.version, actor=actor, changes=changes)


@pytest.mark.parametrize(
    "field, value, before, after",
    [
        ("rating", 4, None, "4"),
        ("thumb", -1, None, "-1"),
        ("gold", True, "false", "true"),
        ("status", "accepted", "pending", "accepted"),
        ("status", "rejected", "pending", "rejected"),
        ("note", "too long", "", "too long"),
        ("correction", "a better answer", None, "a better answer"),
        ("labels", ["math", "short"], "", ",math,short,"),
    ],
)
def test_each_review_action_is_saved_and_kept_in_the_history(
    upload_dataset, field, value, before, after
):
    record = Record.objects.in_dataset(upload_dataset(1).pk).get()
    _review(record, "alice", **{field: value})
    record.refresh_from_db()
    assert record.version == 2
    event = Event.objects.get(record=record)
    assert (event.actor, event.field, event.before, event.after) == ("alice", field, before, after)
    if field == "correction":
        assert record.answer == "answer 0"  # the model's answer stays beside it
        assert record.correction == value and record.corrected_by == "alice"
        assert record.corrected_at is not None and record.final_answer == value
    if field == "labels":
        assert record.label_list == ["math", "short"]


def test_add_and_remove_labels_and_history_in_order(upload_dataset):
    record = Record.objects.in_dataset(upload_dataset(1).pk).get()
    _review(record, "alice", add_labels=["a", "b"])
    _review(record, "bob", remove_labels=["a"], rating=2)
    record.refresh_from_db()
    assert record.label_list == ["b"] and record.rating == 2 and record.version == 3
    events = [(e.actor, e.field, e.before, e.after) for e in Event.objects.order_by("id")]
    assert events[0] == ("alice", "labels", "", ",a,b,")
    assert sorted(events[1:]) == [("bob", "labels", ",a,b,", ",b,"), ("bob", "rating", None, "2")]


def test_bad_values_name_the_parameter_and_change_nothing(upload_dataset):
    record = Record.objects.in_dataset(upload_dataset(1).pk).get()
    for changes, param in [
        ({"rating": 6}, "rating"),
        ({"rating": True}, "rating"),
        ({"thumb": 0}, "thumb"),
        ({"status": "done"}, "status"),
        ({"gold": "yes"}, "gold"),
        ({"labels": ["a,b"]}, "labels"),
        ({"colour": "red"}, "colour"),
    ]:
        with pytest.raises(Invalid) as bad:
            _review(record, "alice", **changes)
        assert bad.value.param == param
    record.refresh_from_db()
    assert record.version == 1 and not Event.objects.exists()


def test_each_reviewer_keeps_a_judgement(upload_dataset):
    record = Record.objects.in_dataset(upload_dataset(1).pk).get()
    _review(record, "alice", rating=5, status="accepted")
    _review(record, "bob", rating=2, status="rejected")
    judgements = {j.reviewer: (j.rating, j.status) for j in record.judgements.all()}
    assert judgements == {"alice": (5, "accepted"), "bob": (2, "rejected")}
    record.refresh_from_db()
    assert (record.rating, record.status, record.reviewed_by) == (2, "rejected", "bob")


def test_a_save_on_an_older_version_is_refused_with_the_current_one(upload_dataset):
    # Given two reviewers who opened the same record at version 1
    record = Record.objects.in_dataset(upload_dataset(1).pk).get()
    alice_copy, bob_copy = Record.objects.get(pk=record.pk), Record.objects.get(pk=record.pk)
    # When alice saves first, then bob saves on the version he saw
    services.review_record(alice_copy, version=1, actor="alice", changes={"correction": "A"})
    with pytest.raises(services.StaleRecord) as stale:
        services.review_record(bob_copy, version=1, actor="bob", changes={"correction": "B"})
    # Then bob is told, with the current record, and alice's correction stands
    assert stale.value.status == 409 and stale.value.param == "version"
    assert stale.value.current.correction == "A" and stale.value.current.version == 2
    record.refresh_from_db()
    assert record.correction == "A" and Event.objects.count() == 1


def test_a_stale_in_memory_copy_loses_the_compare_and_swap(upload_dataset):
    record = Record.objects.in_dataset(upload_dataset(1).pk).get()
    copy = Record.objects.get(pk=record.pk)
    _review(record, "alice", rating=5)
    # copy still says version 1: the database's compare-and-swap refuses it
    with pytest.raises(services.StaleRecord):
        services.review_record(copy, version=1, actor="bob", changes={"rating": 1})
    record.refresh_from_db()
    assert record.rating == 5


def test_bulk_actions_change_what_the_filter_selects_and_write_history(upload_dataset):
    dataset = upload_dataset(12)
    other = upload_dataset(3, name="other", prefix="elsewhere")
    flt = RecordFilter(dataset=dataset.pk, q="question 1")  # question 1, 10, 11
    assert services.bulk_action(flt, "label", value="ones", actor="ops") == 3
    assert services.bulk_action(flt, "label", value="ones", actor="ops") == 0  # no change
    assert services.bulk_action(RecordFilter(label="ones"), "accept", actor="ops") == 3
    assert services.bulk_action(RecordFilter(dataset=dataset.pk), "gold", actor="ops") == 12
    assert services.bulk_action(RecordFilter(label="ones"), "unlabel", value="ones", actor="o") == 3
    records = Record.objects.in_dataset(dataset.pk)
    assert records.filter(status="accepted").count() == 3
    assert records.filter(gold=True).count() == 12 and records.filter(labels="").count() == 12
    assert not Record.objects.in_dataset(other.pk).filter(gold=True).exists()
    one = records.get(custom_id="u-1")
    history = [(e.field, e.before, e.after, e.bulk) for e in one.events.order_by("id")]
    assert history == [
        ("labels", "", ",ones,", True),
        ("status", "pending", "accepted", True),
        ("gold", "false", "true", True),
        ("labels", ",ones,", "", True),
    ]
    assert one.version == 5


def test_bulk_add_to_dataset_and_bad_actions(upload_dataset):
    dataset = upload_dataset(5)
    target = services.create_dataset("picked")
    picked = services.add_selection(target, RecordFilter(q="question 3"))
    assert picked == 1 and target.memberships.count() == 1
    with pytest.raises(Invalid) as bad:
        services.bulk_action(RecordFilter(dataset=dataset.pk), "explode", actor="ops")
    assert bad.value.param == "action"
    with pytest.raises(Invalid) as bad:
        services.bulk_action(RecordFilter(), "label", value="", actor="ops")
    assert bad.value.param == "value"


def test_filters_parse_and_refuse_bad_values():
    flt = RecordFilter.from_params({"rating": ">=4", "gold": "true", "status": "accepted"})
    assert (flt.rating, flt.gold, flt.status) == (">=4", True, "accepted")
    for params, param in [
        ({"rating": "9"}, "rating"),
        ({"rating": "<3x"}, "rating"),
        ({"status": "maybe"}, "status"),
        ({"gold": "perhaps"}, "gold"),
        ({"dataset": "abc"}, "dataset"),
    ]:
        with pytest.raises(Invalid) as bad:
            RecordFilter.from_params(params)
        assert bad.value.param == param


def test_a_bulk_action_records_the_reviewers_judgement_of_every_selected_record(upload_dataset):
    # Given alice, who accepted one record of three on her own
    dataset = upload_dataset(3)
    first, second, third = Record.objects.in_dataset(dataset.pk).order_by("id")
    _review(first, "alice", status="accepted", rating=4)
    everything = RecordFilter(dataset=dataset.pk)
    # When bob rejects everything the filter selects
    assert services.bulk_action(everything, "reject", actor="bob") == 3
    # Then bob has a judgement of each record, as if he had reviewed them one by one
    bobs = {j.record_id: j.status for j in Judgement.objects.filter(reviewer="bob")}
    assert bobs == {first.pk: "rejected", second.pk: "rejected", third.pk: "rejected"}
    alices = Judgement.objects.get(reviewer="alice")
    assert (alices.record_id, alices.status, alices.rating) == (first.pk, "accepted", 4)
    # and the agreement counts it: alice and bob disagree on the one record both judged
    found = selectors.agreement(Record.objects.in_dataset(dataset.pk))
    assert (found.records, found.status) == (1, 0.0)
    # When bob accepts them all again, and labels and golds them
    services.bulk_action(everything, "accept", actor="bob")
    services.bulk_action(
        RecordFilter(dataset=dataset.pk, q="question 1"), "label", actor="bob", value="x"
    )
    services.bulk_action(everything, "gold", actor="bob")
    # Then his judgements are updated in place, one per record, and now agree with alice's
    assert Judgement.objects.filter(reviewer="bob").count() == 3
    judged = Judgement.objects.get(reviewer="bob", record=second)
    assert (judged.status, judged.gold, judged.label_list) == ("accepted", True, ["x"])
    assert Judgement.objects.get(reviewer="bob", record=first).label_list is None  # not labelled
    assert selectors.agreement(Record.objects.in_dataset(dataset.pk)).status == 1.0
    # and alice's own rating stays hers
    assert Judgement.objects.get(reviewer="alice").rating == 4


def test_a_bulk_action_agreeing_with_the_current_value_still_counts_as_a_judgement(
    upload_dataset,
):
    dataset = upload_dataset(2)
    services.bulk_action(RecordFilter(dataset=dataset.pk), "accept", actor="alice")
    # bob agrees: nothing changes on the records, but his judgement is kept
    assert services.bulk_action(RecordFilter(dataset=dataset.pk), "accept", actor="bob") == 0
    assert Judgement.objects.filter(reviewer="bob", status="accepted").count() == 2
    assert selectors.agreement(Record.objects.in_dataset(dataset.pk)).status == 1.0
    assert not Event.objects.filter(actor="bob").exists()  # no change, no history


def test_a_bulk_action_is_a_fixed_number_of_statements_whatever_the_selection(upload_dataset):
    small, large = upload_dataset(3, name="small"), upload_dataset(60, name="large", prefix="l")
    counts = []
    for dataset in (small, large):
        with CaptureQueriesContext(connection) as captured:
            services.bulk_action(
                RecordFilter(dataset=dataset.pk), "label", actor="bob", value="seen"
            )
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]
    assert Judgement.objects.filter(reviewer="bob").count() == 63


def test_a_single_review_keeps_gold_and_labels_in_the_reviewers_judgement(upload_dataset):
    record = Record.objects.in_dataset(upload_dataset(1).pk).get()
    _review(record, "alice", gold=True, add_labels=["a"])
    _review(record, "bob", note="only a note")  # a note is no judgement
    judged = Judgement.objects.get()
    assert (judged.reviewer, judged.gold, judged.label_list, judged.status) == (
        "alice",
        True,
        ["a"],
        "",
    )
