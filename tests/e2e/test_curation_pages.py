# ruff: noqa: F811
"""The curation pages in headless Chromium on the live gunicorn + qcluster pair (fake engine).

A client runs a batch with the official SDK; an operator makes a dataset of it on /curation
(imported by the worker, progress shown live), reviews records on /workbench with the keyboard
only (rate, accept, previous, gold, edit a correction and see the diff), labels everything a
filter selects, exports a fine-tuning file that the client downloads with the SDK, and reads
the analytics. A prompt carrying a script is shown as text and never runs.
"""

from __future__ import annotations

import io
import json
import re
import time

import httpx
import openai
import pytest
from django.conf import settings
from django.db import connection

from curation import services
from curation.filters import RecordFilter
from curation.models import Record
from tests.conftest import request_line
from tests.e2e.conftest import start_batch, wait_for_batch

# The browser fixtures of the admin page tests; tests take them as arguments, hence F811.
from tests.e2e.test_admin_pages import (  # noqa: F401
    admin_page,
    browser,
    page,
    sync_api,
    watch,
)

expect = sync_api.expect

pytestmark = pytest.mark.cluster

XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def _uploaded(n: int = 12, name: str = "reviewed"):
    lines = [
        {
            "messages": [{"role": "user", "content": f"question {i}" + (XSS if i == 0 else "")}],
            "answer": f"answer {i}" + (XSS if i == 0 else ""),
            "model": "m1" if i % 2 else "m2",
        }
        for i in range(n)
    ]
    return services.create_dataset_from_upload(
        name, io.BytesIO("".join(json.dumps(x) + "\n" for x in lines).encode())
    )


def press(page, key: str) -> None:
    """A shortcut that submits a form or follows a link: wait for the next page to load."""
    with page.expect_navigation():
        page.keyboard.press(key)


def test_curation_pages_are_staff_only(page, watch):
    for url in ("/workbench", "/curation", "/enhanced-workbench"):
        page.goto(url)
        expect(page).to_have_url(re.compile(r"/admin/login/\?next=" + re.escape(url) + "$"))


def test_workbench_review_by_keyboard_only(admin_page, watch):
    page = admin_page
    dataset = _uploaded()
    first, second = Record.objects.in_dataset(dataset.pk).order_by("id")[:2]
    page.goto(f"/workbench?dataset={dataset.pk}")
    expect(page.locator("#cur-position")).to_have_text("record 1 of 12")
    # the script in the prompt and the answer is text on the page, and never ran
    expect(page.locator("#cur-prompt")).to_contain_text("<script>window.__pwned = 1</script>")
    expect(page.locator("#cur-answer")).to_contain_text('onerror="window.__pwned = 2"')
    assert page.evaluate("typeof window.__pwned") == "undefined"

    press(page, "4")  # rate 4
    expect(page.locator("#cur-rating")).to_have_text("rating 4")
    press(page, "a")  # accept: saved, and on to the next record
    expect(page.locator("#cur-position")).to_have_text("record 2 of 12")
    expect(page).to_have_url(re.compile(f"record={second.pk}"))
    press(page, "k")  # back to the first
    expect(page.locator("#cur-status")).to_have_text("accepted")
    press(page, "g")  # gold
    expect(page.locator("#cur-gold")).to_be_visible()
    page.keyboard.press("e")  # edit the correction
    expect(page.locator("#cur-correction")).to_be_focused()
    page.keyboard.press("j")  # typed into the field, not a shortcut
    page.fill("#cur-correction", "a corrected answer")
    press(page, "Control+Enter")
    expect(page.locator("#cur-diff ins")).to_contain_text("corrected")
    expect(page.locator("#cur-answer")).to_contain_text("answer 0")  # the original stays
    press(page, "j")  # next
    expect(page.locator("#cur-position")).to_have_text("record 2 of 12")
    press(page, "r")
    expect(page.locator("#cur-position")).to_have_text("record 3 of 12")

    first.refresh_from_db()
    assert (first.rating, first.status, first.gold) == (4, "accepted", True)
    assert first.correction == "a corrected answer" and first.corrected_by == "operator"
    assert Record.objects.get(pk=second.pk).status == "rejected"
    page.goto(f"/workbench?record={first.pk}")
    history = page.locator("#cur-history li")
    expect(history).to_have_count(4)  # rating, status, gold, correction
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert watch.script_errors == [] and watch.outside == []


def test_workbench_bulk_label_on_a_filter_then_analytics(admin_page, watch):
    page = admin_page
    dataset = _uploaded()
    page.goto(f"/workbench?dataset={dataset.pk}")
    page.fill("#f-q", "question 1")
    page.click("#cur-apply")
    expect(page.locator("#cur-position")).to_have_text("record 1 of 3")  # 1, 10, 11
    page.select_option("#cur-bulk-action", "label")
    page.fill("#cur-bulk-value", "ones")
    page.click("#cur-bulk-apply")
    expect(page.locator(".messagelist")).to_contain_text("3 record(s) changed")
    assert Record.objects.with_label("ones").count() == 3
    # the bulk action is the operator's own judgement of each record, as a review would be
    mine = page.locator("#cur-judgements tr[data-reviewer='operator']")
    expect(mine.locator(".cur-j-labels")).to_have_text("ones")
    # ratings by two reviewers, then the charts
    for reviewer, rating in (("alice", 5), ("bob", 3)):
        for record in Record.objects.in_dataset(dataset.pk)[:4]:
            record.refresh_from_db()
            services.review_record(
                record, version=record.version, actor=reviewer, changes={"rating": rating}
            )
    page.goto(f"/enhanced-workbench?dataset={dataset.pk}")
    for chart in ("#cur-ratings", "#cur-agreement", "#cur-chars", "#cur-tokens", "#cur-labels"):
        expect(page.locator(f"svg{chart}")).to_be_visible()
    expect(page.locator("#a-rating-agreement")).to_have_text("0 %")
    expect(page.locator("#a-worst tbody tr")).to_have_count(4)
    assert watch.script_errors == [] and watch.outside == []


def test_dataset_from_a_batch_then_a_fine_tuning_file_the_sdk_downloads(
    admin_page, openai_client, live_cluster, watch
):
    page = admin_page
    batch = start_batch(openai_client, [request_line(i) for i in range(12)])
    assert wait_for_batch(openai_client, batch.id, live_cluster).status == "completed"
    page.goto("/curation")
    page.fill("#cur-from-batches input[name=name]", "from the sdk batch")
    page.fill("#cur-from-batches textarea[name=batch_ids]", batch.id)
    page.click("#cur-from-batches input[type=submit]")
    row = page.locator("tr.cur-dataset", has_text="from the sdk batch")
    # the worker imports it; the table refreshes itself (htmx) until it is done
    expect(row.locator("td.cur-total")).to_have_text("12", timeout=30_000)
    expect(row.locator(".cur-task")).to_have_count(0, timeout=30_000)
    dataset_id = int(row.get_attribute("data-dataset"))

    page.goto(f"/workbench?dataset={dataset_id}")
    page.select_option("#cur-bulk-action", "accept")
    page.click("#cur-bulk-apply")
    expect(page.locator(".messagelist")).to_contain_text("12 record(s) changed")

    page.goto("/curation")
    row = page.locator("tr.cur-dataset", has_text="from the sdk batch")
    expect(row.locator("td.cur-accepted")).to_have_text("12")
    row.locator("select[name=format]").select_option("finetune")
    row.locator("input.cur-export").click()
    expect(page.locator(".messagelist")).to_contain_text("is being exported")
    # the worker exports it; the row refreshes itself until the file's link is there
    link = row.locator(".cur-result a.cur-download")
    expect(link).to_be_visible(timeout=30_000)
    with page.expect_download() as download:
        link.click()
    lines = download.value.path().read_text().splitlines()
    assert len(lines) == 12
    file_id = re.search(r"file-[\w-]+", row.locator(".cur-result").inner_text()).group(0)
    # the dataset's export belongs to the console key; a client's own export is its own file
    assert json.loads(lines[0])["messages"][-1]["role"] == "assistant"
    assert file_id
    assert watch.script_errors == [] and watch.outside == []


def test_workbench_on_a_phone(browser, live_cluster, admin_page, watch):
    dataset = _uploaded(2)
    page = admin_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/workbench?dataset={dataset.pk}")
    prompt = page.locator("#cur-prompt").bounding_box()
    answer = page.locator("#cur-answer").bounding_box()
    assert answer["y"] > prompt["y"] + prompt["height"] - 1  # stacked, not squeezed side by side
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 2, width


def test_a_client_curates_its_own_batch_and_downloads_the_export_with_the_sdk(
    openai_client, other_openai_client, live_cluster, live_api_key
):
    batch = start_batch(openai_client, [request_line(i) for i in range(12)])
    assert wait_for_batch(openai_client, batch.id, live_cluster).status == "completed"
    api = httpx.Client(
        base_url=f"{live_cluster.url}/v1/curation",
        headers={"Authorization": f"Bearer {live_api_key}"},
        timeout=30,
    )
    created = api.post("/datasets", json={"name": "mine", "batch_ids": [batch.id]})
    assert created.status_code == 201, created.text
    dataset_id = created.json()["id"]
    deadline = time.monotonic() + 30
    while (found := api.get(f"/datasets/{dataset_id}").json())["task"] is not None:
        assert time.monotonic() < deadline, found
        time.sleep(0.3)
    assert found["progress"]["total"] == 12
    bulk = api.post(
        "/records/bulk", json={"action": "accept", "filter": {"dataset": str(dataset_id)}}
    )
    assert bulk.json()["changed"] == 12
    export = api.post(f"/datasets/{dataset_id}/exports", json={"format": "finetune"})
    assert export.status_code == 201, export.text
    file_id = export.json()["file_id"]
    # the official SDK sees the export as one of this key's files and downloads it
    assert openai_client.files.retrieve(file_id).purpose == "fine-tune"
    lines = openai_client.files.content(file_id).text.splitlines()
    assert len(lines) == 12
    assert json.loads(lines[0])["messages"] == [
        {"role": "user", "content": "question 0"},
        {"role": "assistant", "content": "echo: question 0"},
    ]
    # another key sees neither the dataset nor the file
    other = httpx.Client(
        base_url=f"{live_cluster.url}/v1/curation",
        headers={"Authorization": f"Bearer {other_openai_client.api_key}"},
    )
    assert other.get(f"/datasets/{dataset_id}").status_code == 404
    with pytest.raises(openai.NotFoundError):
        other_openai_client.files.retrieve(file_id)


def _lock(table: str, mode: str):
    """A second connection to the test database holding ``table`` in ``mode`` until rolled back."""
    import psycopg

    db = settings.DATABASES["default"]
    held = psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=db["PORT"] or None,
    )
    held.execute(f"LOCK TABLE {table} IN {mode} MODE")
    return held


def test_an_export_shows_its_progress_and_time_left_then_its_result(
    admin_page, live_cluster, watch
):
    if connection.vendor != "postgresql":
        pytest.skip("holds the worker with PostgreSQL table locks")
    page = admin_page
    dataset = _uploaded()
    services.bulk_action(RecordFilter(dataset=dataset.pk), "accept", actor="ops")
    # Two gates for the worker: before it reads the first record, and before it stores the file
    before_reading = _lock("curation_recordcontent", "ACCESS EXCLUSIVE")
    before_storing = _lock("jobs_file", "SHARE")
    try:
        page.goto("/curation")
        row = page.locator(f"tr.cur-dataset[data-dataset='{dataset.pk}']")
        row.locator("select[name=format]").select_option("finetune")
        row.locator("input.cur-export").click()
        expect(page.locator(".messagelist")).to_contain_text("is being exported")
        task = row.locator(".cur-task[data-task='export']")
        expect(task).to_contain_text("export 0/12")  # counted, nothing read yet
        expect(task.locator(".cur-eta")).to_have_text("estimating the time left…")
        before_reading.rollback()
        # the page polls: every record read, the bar full, the time left from the pace
        expect(task).to_contain_text("export 12/12", timeout=30_000)
        expect(task.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "100")
        expect(task.locator(".cur-eta")).to_have_text(re.compile(r"about \d+ s left"))
        before_storing.rollback()
        expect(row.locator(".cur-result a.cur-download")).to_be_visible(timeout=30_000)
        expect(row.locator(".cur-result")).to_contain_text("Exported 12 line(s)")
        expect(row.locator(".cur-task")).to_have_count(0)
    finally:
        before_reading.close()
        before_storing.close()
    assert watch.script_errors == [] and watch.outside == []


def test_merge_dedupe_and_split_from_the_page_end_with_their_outcome(admin_page, watch):
    page = admin_page
    first, second = _uploaded(12, name="week 1"), _uploaded(12, name="week 2")
    page.goto("/curation")
    page.select_option("#cur-merge select[name=dataset_ids]", [str(first.pk), str(second.pk)])
    page.fill("#cur-merge input[name=name]", "both weeks")
    page.click("#cur-merge input[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text("is being merged from 2 datasets")
    row = page.locator("tr.cur-dataset", has_text="both weeks")
    # the worker fills it; the row refreshes itself until the outcome shows
    expect(row.locator(".cur-result")).to_have_text("Merged: 24 record(s).", timeout=30_000)
    expect(row.locator("td.cur-total")).to_have_text("24")
    row.locator("form:has(input[value=dedupe]) input[type=submit]").click()
    expect(row.locator(".cur-result")).to_have_text(
        "De-duplicated: 12 duplicate(s) removed.", timeout=30_000
    )
    expect(row.locator("td.cur-total")).to_have_text("12")
    row.locator("input[name=validation_fraction]").fill("0.25")
    row.locator("form:has(input[value=split]) input[type=submit]").click()
    expect(row.locator(".cur-result")).to_have_text("Split: 9 train, 3 validation.", timeout=30_000)
    expect(row.locator(".cur-task")).to_have_count(0)
    assert watch.script_errors == [] and watch.outside == []
