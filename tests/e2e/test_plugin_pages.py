# ruff: noqa: F811
"""Plugin pages in headless Chromium on the live gunicorn + qcluster pair: Batch Submitter through
its form (the issue's end-to-end test), and Candidate Evaluator from its page to the ranking.

The fixtures are those of tests/e2e (same browser, server and rules; the live cluster is this
package's, so it stops when the package's tests end): Debian's Chromium, no request may leave
for another host, no script error, no 4xx/5xx, and the cluster's logs stay free of errors. The
/plugins page's previews (our vendored script) render the plugin's component; the form previews
the JSONL, submits, and the batch page follows the batch to ``completed``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from plugins import services
from tests.e2e.test_admin_pages import (  # noqa: F401
    admin_page,
    browser,
    page,
    sync_api,
    watch,
)

expect = sync_api.expect
pytestmark = pytest.mark.cluster
SCREENSHOTS = Path("/tmp")
LIVE_TIMEOUT_MS = 30_000


def test_submit_a_batch_from_the_form(admin_page, live_api_key, watch):
    page = admin_page
    # given the plugin enabled (in this process; the web server sees it on its next check)
    services.enable("batch-submitter")

    # the /plugins page lists it, and its component preview is rendered by the page's script
    page.goto("/plugins")
    card = page.locator("#plugin-batch-submitter")
    expect(card.locator(".plugin-state")).to_have_text("enabled")
    expect(card.locator(".plugin-hooks")).to_have_text("ui")
    preview = card.locator("[data-plugin-preview='batch-submitter']")
    expect(preview).to_have_attribute("data-rendered", "1")
    expect(preview).to_contain_text("Nothing submitted yet.")
    page.screenshot(path=str(SCREENSHOTS / "plugins-page.png"), full_page=True)

    # when the operator opens its page and previews three pasted prompts
    card.get_by_role("link", name="Submit a batch").first.click()
    expect(page).to_have_url(re.compile(r"/plugins/batch-submitter/submit$"))
    page.select_option("#id_model", "fake-model")
    page.fill("#id_prompts", "What is 2+2?\nName a colour.\nSay hello.")
    page.fill("#id_max_tokens", "16")
    page.get_by_role("button", name="Preview JSONL").click()
    expect(page.locator("#jsonl-preview")).to_contain_text('"custom_id": "prompt-1"')
    expect(page.locator("#jsonl-preview")).to_contain_text('"max_tokens": 16')
    expect(page.locator(".plugin-notice-info")).to_contain_text("3 requests")
    # the form keeps what was typed
    expect(page.locator("#id_prompts")).to_have_value("What is 2+2?\nName a colour.\nSay hello.")

    # then a CSV with a template, uploaded, is submitted as a batch
    page.select_option("#id_mode", "csv")
    page.fill("#id_template", "Translate to French: {text}")
    page.set_input_files(
        "#id_upload",
        files=[
            {"name": "rows.csv", "mimeType": "text/csv", "buffer": b"id,text\nr1,cat\nr2,dog\n"}
        ],
    )
    page.get_by_role("button", name="Submit batch").click()
    expect(page.locator(".plugin-notice-success")).to_contain_text("submitted with 2 requests")
    page.screenshot(path=str(SCREENSHOTS / "plugins-batch-submitter.png"), full_page=True)

    # and its link opens the batch page, which follows the batch to its end
    page.get_by_role("link", name=re.compile(r"^Open batch batch_")).click()
    expect(page).to_have_url(re.compile(r"/batches/batch_\w+$"))
    expect(page.locator("#batch-status")).to_have_text("completed", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#batch-counts")).to_have_text("2 total, 2 completed, 0 failed, 0 pending")
    watch.assert_clean()


def test_candidate_evaluator_from_its_page_to_the_ranking(admin_page, live_api_key, watch):
    page = admin_page
    services.enable("candidate-evaluator")
    page.goto("/plugins/candidate-evaluator/evaluate")
    page.select_option("#id_model", "fake-model")
    page.fill("#id_job_description", "Backend engineer <Python>")
    page.set_input_files(
        "#id_upload",
        files=[
            {
                "name": "people.jsonl",
                "mimeType": "application/jsonl",
                "buffer": b'{"name": "Ada <b>", "role": "Engineer", "skills": ["Python"]}\n'
                b'{"name": "Bob", "role": "Analyst", "skills": "SQL"}\n',
            }
        ],
    )
    page.get_by_role("button", name="Evaluate").click()
    expect(page.locator(".plugin-notice-success")).to_contain_text("2 candidates")
    page.get_by_role("link", name="See the ranking").click()
    expect(page).to_have_url(re.compile(r"/plugins/candidate-evaluator/evaluate\?batch_id=batch_"))
    # the fake engine answers with no verdict: both listed, unranked, names escaped as text
    page.wait_for_timeout(500)
    for _ in range(40):
        if "(completed)" in page.locator("#plugin-page h3").first.inner_text():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(page.locator("#candidate-ranking tbody tr")).to_have_count(2)
    expect(page.locator("#candidate-ranking")).to_contain_text("Ada <b>")
    expect(page.locator("#candidate-ranking")).to_contain_text("no verdict")
    expect(page.get_by_role("link", name="Download as CSV")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "plugins-candidates.png"), full_page=True)
    watch.assert_clean()
