"""The three pages with the Django client: staff only, review forms, bulk forms, the curation
actions, analytics, and prompts/answers with markup shown as text."""

from __future__ import annotations

import io
import json
import re

from curation import services
from curation.models import Dataset, Record
from tests.conftest import csrf_token


def _post(client, url: str, data: dict):
    return client.post(url, {**data, "csrfmiddlewaretoken": csrf_token(client)})


def test_the_pages_are_staff_only(client):
    for url in ("/workbench", "/curation", "/enhanced-workbench"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_workbench_shows_a_record_side_by_side_with_markup_as_text(staff_client, db):
    line = {
        "messages": [{"role": "user", "content": "<script>alert('p')</script>"}],
        "answer": "<img src=x onerror=alert(1)>",
    }
    dataset = services.create_dataset_from_upload("x", io.BytesIO(json.dumps(line).encode()))
    record = Record.objects.get()
    services.review_record(record, version=1, actor="ops", changes={"correction": "<b>ok</b>"})
    page = staff_client.get(f"/workbench?dataset={dataset.pk}").content.decode()
    assert (
        "<script>alert" not in page and "&lt;script&gt;alert(&#x27;p&#x27;)&lt;/script&gt;" in page
    )
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<b>ok</b>" not in page and "&lt;b&gt;ok&lt;/b&gt;" in page
    assert 'id="cur-diff"' in page and "record 1 of 1" in page


def test_review_buttons_save_and_a_stale_form_is_refused(staff_client, upload_dataset):
    dataset = upload_dataset(3)
    first, second, _ = Record.objects.in_dataset(dataset.pk).order_by("id")
    url = f"/workbench?dataset={dataset.pk}"
    response = _post(staff_client, url, {"record": first.pk, "version": 1, "rating": "4"})
    assert response.status_code == 302
    # accept moves on to the next record of the filter
    response = _post(
        staff_client,
        url,
        {"record": first.pk, "version": 2, "status": "accepted", "next": second.pk},
    )
    assert f"record={second.pk}" in response["Location"]
    first.refresh_from_db()
    assert (first.rating, first.status, first.version) == (4, "accepted", 3)
    # a form still showing version 1 is refused, and says so
    response = _post(staff_client, url, {"record": first.pk, "version": 1, "note": "old"})
    page = staff_client.get(response["Location"]).content.decode()
    assert "changed since version 1" in page
    first.refresh_from_db()
    assert first.note == ""
    # the edit form: correction, labels, note
    _post(
        staff_client,
        url,
        {
            "record": first.pk,
            "version": 3,
            "correction": "better",
            "labels": "a, b",
            "note": "n",
        },
    )
    first.refresh_from_db()
    assert (first.correction, first.label_list, first.note) == ("better", ["a", "b"], "n")


def test_bulk_form_acts_on_the_whole_filter(staff_client, upload_dataset):
    dataset = upload_dataset(12)
    url = f"/workbench?dataset={dataset.pk}&q=question+1"
    response = _post(staff_client, url, {"action": "bulk", "bulk_action": "label", "value": "ones"})
    page = staff_client.get(response["Location"]).content.decode()
    assert "label: 3 record(s) changed." in page.lower()
    assert Record.objects.with_label("ones").count() == 3
    target = services.create_dataset("picked")
    _post(
        staff_client,
        "/workbench?label=ones",
        {"action": "bulk", "bulk_action": "add_to_dataset", "target": target.pk},
    )
    assert target.memberships.count() == 3


def test_bad_filter_values_are_shown_not_crashed(staff_client, db):
    page = staff_client.get("/workbench?rating=9").content.decode()
    assert "rating must be 1-5" in page


def test_curation_page_makes_splits_exports_and_deletes(
    staff_client, upload_dataset, django_capture_on_commit_callbacks
):
    dataset = upload_dataset(12)
    page = staff_client.get("/curation").content.decode()
    assert f'data-dataset="{dataset.pk}"' in page and "0/12 reviewed" in page

    def post(data: dict) -> str:
        # the operation's task runs inline once the request has committed
        with django_capture_on_commit_callbacks(execute=True):
            response = _post(staff_client, "/curation", data)
        return staff_client.get(response["Location"]).content.decode()

    page = post({"action": "split", "dataset": dataset.pk, "validation_fraction": "0.25"})
    assert "is being split" in page and "Split: 9 train, 3 validation." in page
    page = post({"action": "export", "dataset": dataset.pk, "format": "finetune"})
    assert "Nothing to export" in page  # nothing accepted yet: a clear message on the row
    _post(staff_client, "/workbench", {"action": "bulk", "bulk_action": "accept"})
    page = post(
        {"action": "export", "dataset": dataset.pk, "format": "finetune", "only": "accepted"}
    )
    link = re.search(r'href="(/curation/files/file-[^"]+)"', page)
    assert link, page
    download = staff_client.get(link.group(1))
    assert len(b"".join(download.streaming_content).splitlines()) == 12
    assert "Nothing to export" not in page  # a new operation clears the last one's error
    _post(staff_client, "/curation", {"action": "delete", "dataset": dataset.pk})
    assert not Dataset.objects.filter(pk=dataset.pk).exists()


def test_curation_page_upload_names_the_bad_line(staff_client, db):
    bad = io.BytesIO(b'{"messages": [{"role": "user", "content": "q"}], "answer": "a"}\n[1]\n')
    bad.name = "bad.jsonl"
    response = staff_client.post(
        "/curation",
        {
            "action": "upload",
            "name": "x",
            "file": bad,
            "csrfmiddlewaretoken": csrf_token(staff_client),
        },
    )
    page = staff_client.get(response["Location"]).content.decode()
    assert "line 2: a line must be a JSON object" in page


def test_enhanced_workbench_draws_the_charts(staff_client, upload_dataset):
    dataset = upload_dataset(4)
    records = list(Record.objects.in_dataset(dataset.pk).order_by("id"))
    for reviewer, ratings in (("alice", [5, 4, 1, 2]), ("bob", [5, 3, 1, 2])):
        for record, rating in zip(records, ratings, strict=True):
            record.refresh_from_db()
            services.review_record(
                record,
                version=record.version,
                actor=reviewer,
                changes={"rating": rating, "add_labels": [reviewer]},
            )
    page = staff_client.get(f"/enhanced-workbench?dataset={dataset.pk}").content.decode()
    for chart in ("cur-ratings", "cur-agreement", "cur-chars", "cur-tokens", "cur-labels"):
        assert f'id="{chart}"' in page and f'<p class="ops-empty" id="{chart}"' not in page
    assert re.search(r'id="a-rating-agreement">75 %', page)
    assert 'id="a-worst"' in page
