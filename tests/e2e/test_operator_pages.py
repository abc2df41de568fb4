# ruff: noqa: F811
"""The operator pages (/queue, /history, /workers) in headless Chromium, on SDK-made data.

Same browser, server and rules as ``test_admin_pages.py`` (whose fixtures are reused): Debian's
Chromium, the live gunicorn + qcluster pair, no request may leave for another host, no script
error, no 4xx/5xx. The live parts are checked live: the page is loaded once, marked, and must
change (htmx polling every 3 s) without being reloaded.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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

LIVE_TIMEOUT_MS = 20_000  # the [[hang]] (4 s) plus a few polls of 3 s
SCREENSHOTS = Path("/tmp")


def _hanging_batch(client, cluster, lines: int = 20, fail: int | None = None):
    """A batch whose second chunk (of 5) holds the worker for 4 s; returned once it is inside."""
    batch = start_batch(
        client,
        [
            request_line(
                i,
                content=f"question {i}"
                + (" [[hang]]" if i == 5 else "")
                + (" [[fail]]" if i == fail else ""),
            )
            for i in range(lines)
        ],
    )
    wait_for_batch(
        client,
        batch.id,
        cluster,
        until=lambda b: b.status == "in_progress" and b.request_counts.completed >= 5,
    )
    return batch


def _mark_loaded(page) -> None:
    """A flag a reload would wipe: the live checks end by asserting it is still there."""
    page.evaluate("window.__opsNoReload = true")


def _assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__opsNoReload === true"), "the page was reloaded"


def test_operator_pages_are_staff_only(page, watch):
    for url in ("/queue", "/history", "/workers"):
        page.goto(url)
        expect(page).to_have_url(re.compile(r"/admin/login/\?next=" + re.escape(url) + "$"))
    assert not watch.outside and not watch.script_errors


def test_admin_index_links_to_the_operator_pages(admin_page, watch):
    page = admin_page
    links = page.locator("#ops-links a")
    expect(links.first).to_have_text("Queue")
    expect(page.locator("#ops-links")).to_contain_text("History")
    links.filter(has_text="Queue").click()
    expect(page).to_have_url(re.compile(r"/queue$"))
    expect(page.locator("#content h1")).to_have_text("Queue")
    # inside the admin's frame: its header, breadcrumbs and the other operator pages
    expect(page.locator("#site-name")).to_contain_text("batchserver")
    expect(page.locator(".breadcrumbs")).to_contain_text("Console")
    expect(page.locator(".console-nav a.current")).to_have_text("Queue")
    page.locator(".console-nav a", has_text="Workers").click()
    expect(page.locator("#content h1")).to_have_text("Workers")
    watch.assert_clean()


def test_queue_page_follows_a_running_batch_until_it_is_done(
    admin_page, openai_client, live_cluster, watch
):
    page = admin_page
    # given a batch held inside its second chunk, and a second batch waiting behind it
    running = _hanging_batch(openai_client, live_cluster)
    waiting = start_batch(openai_client, [request_line(i) for i in range(3)])

    # when the queue page is open
    page.goto("/queue")
    _mark_loaded(page)
    first = page.locator(f"tr.queue-row[data-batch='{running.id}']")
    second = page.locator(f"tr.queue-row[data-batch='{waiting.id}']")

    # then it shows the running batch first, with its model, priority and progress
    expect(first.locator(".state")).to_have_text("running")
    expect(first.locator(".position")).to_have_text("1")
    expect(first.locator(".model")).to_have_text("fake-model")
    expect(first.locator(".priority")).to_have_text("0")
    expect(first.locator(".paused")).to_have_text("no")
    expect(first.locator(".ops-progress-label")).to_have_text("5/20")
    expect(first.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "25")
    expect(first.locator(".eta")).not_to_be_empty()
    expect(second.locator(".position")).to_have_text("2")
    page.screenshot(path=str(SCREENSHOTS / "ops-queue.png"), full_page=True)

    # and, without a reload, both leave the queue once the worker has run them
    expect(first).to_have_count(0, timeout=LIVE_TIMEOUT_MS)
    expect(second).to_have_count(0, timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#queue-empty")).to_be_visible()
    _assert_not_reloaded(page)
    for batch in (running, waiting):
        assert wait_for_batch(openai_client, batch.id, live_cluster).status == "completed"
    watch.assert_clean()


def test_batch_page_shows_progress_live_and_links_to_files(
    admin_page, openai_client, live_cluster, watch
):
    page = admin_page
    # given a running batch with one line the engine fails
    batch = _hanging_batch(openai_client, live_cluster, fail=12)

    # when its page is open while it runs
    page.goto(f"/batches/{batch.id}")
    _mark_loaded(page)
    expect(page.locator("#batch-status")).to_have_text("in_progress")
    expect(page.locator("#batch-model")).to_have_text("fake-model")
    expect(page.locator("#batch-position")).to_contain_text("running")
    expect(page.locator("#ops-batch [role=progressbar]")).to_have_attribute("aria-valuenow", "25")

    # then it turns completed by itself, with its counts, errors and result files
    expect(page.locator("#batch-status")).to_have_text("completed", timeout=LIVE_TIMEOUT_MS)
    _assert_not_reloaded(page)
    done = wait_for_batch(openai_client, batch.id, live_cluster)
    expect(page.locator("#ops-batch [role=progressbar]")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#batch-counts")).to_have_text(
        "20 total, 19 completed, 1 failed, 0 pending"
    )
    expect(page.locator("#batch-chunks")).to_have_text("done: 4")
    failed = page.locator("#batch-failed-requests tbody tr")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("req-12")
    page.screenshot(path=str(SCREENSHOTS / "ops-batch.png"), full_page=True)

    for kind, file_id in (("output", done.output_file_id), ("error", done.error_file_id)):
        row = page.locator(f"#batch-files tr.file-{kind}")
        expect(row.locator("a.file-page")).to_have_attribute(
            "href", f"/admin/jobs/file/{file_id}/change/"
        )
        download = row.locator("a.file-download")
        expect(download).to_have_attribute("href", f"/admin/jobs/file/{file_id}/download/")
        response = page.request.get(download.get_attribute("href"))
        assert response.status == 200, f"{response.status} {response.url}"
        assert response.body() == openai_client.files.content(file_id).content

    # and its admin page is one click away
    page.locator("#admin-change-link").click()
    expect(page.locator("#content h2")).to_have_text(f"{batch.id} (completed)")
    watch.assert_clean()


def test_history_filters_and_throughput_charts(admin_page, openai_client, live_cluster, watch):
    page = admin_page
    # given three batches that ran and one that failed validation (a duplicate custom_id)
    ran = [start_batch(openai_client, [request_line(i) for i in range(n)]) for n in (4, 9, 15)]
    broken = start_batch(openai_client, [request_line(1), request_line(2, custom_id="req-1")])
    for batch in [*ran, broken]:
        wait_for_batch(openai_client, batch.id, live_cluster)

    # when the history page is open
    page.goto("/history")

    # then it lists all four and draws one point per batch that ran, in both charts
    expect(page.locator("tr.history-row")).to_have_count(4)
    for chart in ("#chart-tokens", "#chart-requests"):
        expect(page.locator(chart)).to_have_attribute("data-points", "3")
        points = page.locator(f"{chart} circle.point")
        expect(points).to_have_count(3)
        values = [float(v) for v in points.evaluate_all("ns => ns.map(n => n.dataset.value)")]
        assert all(v > 0 for v in values), values
        box = page.locator(chart).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 80, box
    page.screenshot(path=str(SCREENSHOTS / "ops-history.png"), full_page=True)

    # and the filters narrow it: by status, by model, by creation date
    page.select_option("#id_status", "failed")
    page.click("#history-filter input[type=submit]")
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(page.locator("tr.history-row")).to_have_count(1)
    expect(page.locator(f"tr.history-row[data-batch='{broken.id}']")).to_have_count(1)
    expect(page.locator("#chart-tokens")).to_have_text("No finished batch to chart.")

    page.goto("/history")
    page.select_option("#id_model", "fake-model")
    page.click("#history-filter input[type=submit]")
    expect(page.locator("tr.history-row")).to_have_count(3)

    page.goto("/history")
    page.fill("#id_created_from", "2100-01-01")
    page.click("#history-filter input[type=submit]")
    expect(page.locator("#history-empty")).to_be_visible()
    watch.assert_clean()


def test_workers_page_shows_the_live_worker(admin_page, openai_client, live_cluster, watch):
    page = admin_page
    # given a batch the worker has run
    batch = start_batch(openai_client, [request_line(i) for i in range(12)])
    wait_for_batch(openai_client, batch.id, live_cluster)

    # when the workers page is open
    page.goto("/workers")
    _mark_loaded(page)

    # then the worker is there: alive, its heartbeat recent, the model loaded, work counted
    row = page.locator("tr.worker-row").first
    expect(row.locator(".alive")).to_have_text("alive")
    expect(row.locator(".heartbeat-age")).to_have_text(re.compile(r"^\d+ s$"))
    assert int(row.locator(".heartbeat-age").inner_text().split()[0]) < 30
    expect(row.locator(".loaded-model")).to_have_text("fake-model")
    expect(row.locator(".state")).to_have_text(re.compile("idle|running"))
    assert int(row.locator(".requests-done").inner_text()) > 0
    expect(row.locator(".throughput")).to_have_text(re.compile(r"tokens/s$"))

    # and the table refreshes itself
    stamp = page.locator("#ops-workers .ops-updated").inner_text()
    expect(page.locator("#ops-workers .ops-updated")).not_to_have_text(
        stamp, timeout=LIVE_TIMEOUT_MS
    )
    _assert_not_reloaded(page)
    watch.assert_clean()
