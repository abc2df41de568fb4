# ruff: noqa: F811
"""The benchmark pages in headless Chromium on the live gunicorn + qcluster pair (fake engine).

An operator uploads a dataset, starts a run of two models from ``/benchmark-runner``, watches
it progress without reloading (htmx), and reads the comparison: summary, charts and the matrix
of identical samples, exported as CSV. The run's batches go through the real queue and worker,
and each batch's end reaches the run through the status signal (no periodic tick here).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from models_registry.services import register_model

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

LIVE_TIMEOUT_MS = 40_000  # two [[hang]] chunks (4 s each) and a few polls of 2 s
SCREENSHOTS = Path("/tmp")
PROMPTS = 12


def dataset_bytes() -> bytes:
    """12 prompts; the 7th holds the worker 4 s in its chunk (chunks of 5 here)."""
    return "".join(
        json.dumps(
            {
                "id": f"p{i}",
                "messages": [
                    {"role": "user", "content": f"say {i}" + (" [[hang]]" if i == 6 else "")}
                ],
                "reference": f"say {i}",
            }
        )
        + "\n"
        for i in range(PROMPTS)
    ).encode()


def test_benchmark_pages_are_staff_only(page, watch):
    for url in ("/benchmark-runner", "/model-comparison"):
        page.goto(url)
        expect(page).to_have_url(re.compile(r"/admin/login/\?next=" + re.escape(url) + "$"))
    assert not watch.outside and not watch.script_errors


def test_start_a_run_follow_it_and_compare_the_samples(admin_page, live_cluster, watch):
    page = admin_page
    register_model("fake-a")
    register_model("fake-b")

    # given a dataset uploaded from the runner page
    page.goto("/benchmark-runner")
    expect(page.locator("#bench-no-runs")).to_be_visible()
    upload = page.locator("#bench-upload-form")
    upload.locator("input[name=name]").fill("e2e prompts")
    upload.locator("input[name=file]").set_input_files(
        {"name": "prompts.jsonl", "mimeType": "application/jsonl", "buffer": dataset_bytes()}
    )
    upload.locator("input[type=submit]").click()
    expect(page.locator(".messagelist")).to_contain_text("Dataset 'e2e prompts': 12 prompts.")

    # when a run of both models is started from the form
    form = page.locator("#bench-run-form")
    form.locator("select[name=dataset]").select_option(label="e2e prompts (12 prompts)")
    form.locator("input[name=models][value=fake-a]").check()
    form.locator("input[name=models][value=fake-b]").check()
    form.locator("input[name=max_tokens]").fill("16")
    page.click("#bench-start")
    expect(page).to_have_url(re.compile(r"/benchmark-runner\?run=\d+$"))
    run_id = page.url.rsplit("=", 1)[1]
    page.evaluate("window.__benchNoReload = true")
    row = page.locator(f"tr.bench-run[data-run='{run_id}']")

    # then the page follows it while it runs: progress part-way, an ETA, then completed
    expect(row.locator(".progress")).to_have_attribute("data-total", str(2 * PROMPTS))
    expect(row).to_have_attribute("data-status", "running", timeout=LIVE_TIMEOUT_MS)
    expect(row.locator(".progress")).to_have_attribute(
        "data-done", re.compile(r"^([1-9]|1\d|2[0-3])$"), timeout=LIVE_TIMEOUT_MS
    )
    expect(row.locator(".eta")).to_contain_text(re.compile(r"in \d+|estimating"))
    page.screenshot(path=str(SCREENSHOTS / "bench-runner.png"), full_page=True)
    expect(row).to_have_attribute("data-status", "completed", timeout=LIVE_TIMEOUT_MS)
    expect(row.locator(".ops-progress-label")).to_have_text("24/24 (100%)")
    assert page.evaluate("window.__benchNoReload === true"), "the page was reloaded"

    # and the comparison shows both models side by side, prompt by prompt
    row.locator("a.bench-compare").click()
    expect(page).to_have_url(re.compile(rf"/model-comparison\?runs={run_id}$"))
    expect(page.locator("tr.bench-summary-row")).to_have_count(2)
    expect(page.locator("tr.bench-summary-row[data-model=fake-a]")).to_have_attribute(
        "data-status", "completed"
    )
    matrix = page.locator("#bench-matrix")
    expect(matrix.locator("th.bench-column")).to_have_count(2)
    expect(matrix.locator("tr.bench-sample")).to_have_count(PROMPTS)
    first = matrix.locator("tr.bench-sample[data-item=p0]")
    expect(first.locator(".bench-reference")).to_have_text("say 0")
    expect(first.locator(".bench-cell").first).to_contain_text("echo: say 0")
    expect(first.locator(".bench-cell").first).to_contain_text("contains: 1.00")
    for chart in ("#chart-throughput", "#chart-quality"):
        expect(page.locator(chart)).to_be_visible()
    expect(page.locator("#chart-throughput rect.bar")).to_have_count(2)
    page.screenshot(path=str(SCREENSHOTS / "bench-comparison.png"), full_page=True)

    # and the matrix downloads as CSV, one line per prompt
    href = page.locator("#bench-export-csv").get_attribute("href")
    response = page.request.get(href)
    assert response.status == 200
    rows = list(csv.reader(io.StringIO(response.text())))
    assert len(rows) == PROMPTS + 1 and rows[1][:3] == ["p0", "say 0", "say 0"]
    watch.assert_clean()
