# ruff: noqa: F811
"""Every console page in headless Chromium: staff see it whole, anonymous visitors log in first.

Same browser, server and rules as ``test_admin_pages.py`` (whose fixtures are reused): Debian's
Chromium, the live gunicorn + qcluster pair, no request may leave for another host, no script
error, no 4xx/5xx. Each page's screenshot is kept under ``test-output/console/`` (or
``$TEST_OUTPUT_DIR/console``) as a CI artifact. The operator controls are driven through their
forms, as an operator would.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from batchserver import console
from batchserver.models import AuditEntry
from batchserver.operations.models import MetricSample
from jobs.models import Batch
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

OUTPUT = (
    Path(os.environ.get("TEST_OUTPUT_DIR", Path(settings.BASE_DIR) / "test-output")) / "console"
)
# Every page of the console's navigation, and the batch-side pages it links to.
URLS = [page.url for page in console.PAGES if page.path != "admin/"] + ["/admin/"]
PHONE = {"width": 390, "height": 844}


def _shot(page, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000
    return path


def _name(url: str) -> str:
    return url.strip("/").replace("/", "-") or "hub"


def test_anonymous_visitors_are_sent_to_the_login(page, watch):
    for url in URLS:
        answer = page.goto(url)
        assert answer is not None
        expect(page).to_have_url(re.compile(r"/admin/login/\?next=" + re.escape(url) + "$"))
    assert not watch.outside and not watch.script_errors


def _an_hour_of_samples() -> None:
    """An hour of dashboard samples as the minute schedule would have taken them."""
    now = timezone.now()
    MetricSample.objects.bulk_create(
        MetricSample(
            at=now - timedelta(minutes=60 - m),
            queued_batches=(m * 7) % 5,
            running_batches=1 + m % 2,
            requests_completed=m * m * 40,
            requests_failed=m * 2,
            output_tokens=m * m * 1600,
            workers_alive=2,
            engine_loads=int(m % 20 == 0),
            gpus=[
                {
                    "worker": "gpu-1:4242",
                    "index": 0,
                    "utilization_percent": 60 + (m * 13) % 35,
                    "temperature_celsius": 55 + m % 12,
                    "memory_used_bytes": (30 + m % 8) * 2**30,
                }
            ],
        )
        for m in range(61)
    )


def test_staff_see_every_page_without_errors_on_a_laptop_and_a_phone(admin_page, watch):
    page = admin_page
    _an_hour_of_samples()
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    for url in URLS:
        answer = page.goto(url)
        assert answer is not None and answer.status == 200, (url, answer and answer.status)
        expect(page.locator("#site-name")).to_contain_text("batchserver")
        if url != "/admin/":
            expect(page.locator(".console-nav")).to_be_visible()
        _shot(page, _name(url))
        if url == "/dashboard":
            expect(page.locator("svg#chart-tokens")).to_be_visible()
            expect(page.locator("svg#chart-gpu-temperature_celsius")).to_be_visible()
    page.emulate_media(color_scheme="dark")
    page.goto("/dashboard")
    _shot(page, "dashboard-dark")
    page.set_viewport_size(PHONE)
    for url in ("/", "/settings", "/logs", "/queue"):
        page.goto(url)
        # usable on a phone: the page does not need sideways scrolling
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"] + 2, (url, width)
        _shot(page, f"phone-{_name(url)}")
    assert not console_errors, console_errors
    watch.assert_clean()


def test_settings_form_refuses_a_bad_value_and_saves_a_good_one(admin_page, watch):
    page = admin_page
    page.goto("/settings")
    row = page.locator("#setting-BATCH_MAX_LINES")
    row.locator("input[name=value]").fill("lots")
    row.locator("button.save").click()
    expect(page.locator(".messagelist .error")).to_contain_text(
        "BATCH_MAX_LINES: must be a whole number. The old value is kept."
    )
    expect(row.locator("input[name=value]")).to_have_value(str(settings.BATCH_MAX_LINES))

    row.locator("input[name=value]").fill("1234")
    row.locator("button.save").click()
    expect(page.locator(".messagelist .success")).to_contain_text("BATCH_MAX_LINES is now 1234.")
    expect(row.locator(".console-source")).to_have_text("database")
    expect(page.locator("#settings-changes")).to_contain_text("operator")
    row.locator("button.reset").click()
    expect(page.locator(".messagelist .success")).to_contain_text("back to its value")
    watch.assert_clean()


def test_batch_controls_through_their_forms(admin_page, openai_client, live_cluster, watch):
    page = admin_page
    # given a batch held by the worker inside its second chunk
    batch = start_batch(
        openai_client,
        [request_line(i, content=f"q {i}" + (" [[hang]]" if i == 5 else "")) for i in range(20)],
    )
    wait_for_batch(
        openai_client,
        batch.id,
        live_cluster,
        until=lambda b: b.status == "in_progress" and b.request_counts.completed >= 5,
    )
    page.goto(f"/batches/{batch.id}")

    page.locator("#batch-controls button[value=pause]").click()
    expect(page.locator(".messagelist .success")).to_have_text(
        re.compile(rf"{batch.id}: pause done\.", re.I)
    )
    page.locator("#batch-controls input[name=priority]").fill("9")
    page.locator("#batch-controls button[value=priority]").click()
    expect(page.locator(".messagelist .success")).to_have_text(
        re.compile(rf"{batch.id}: priority done\.", re.I)
    )
    page.locator("#batch-controls button[value=resume]").click()
    expect(page.locator(".messagelist .success")).to_have_text(
        re.compile(rf"{batch.id}: resume done\.", re.I)
    )
    expect(page.locator("#batch-audit")).to_contain_text("batch.priority")
    _shot(page, "batch-controls")

    # the worker page: reset stuck work
    page.goto("/workers")
    page.locator("#reset-stuck").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Reset stuck work:")

    assert wait_for_batch(openai_client, batch.id, live_cluster).status == "completed"
    assert Batch.objects.get(pk=batch.id).priority == 9
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "actor"))
    assert actions == [
        ("batch.pause", "operator"),
        ("batch.priority", "operator"),
        ("batch.resume", "operator"),
        ("work.reset_stuck", "operator"),
    ]
    # and the batch's own log lines reached its page through the log store
    page.goto(f"/batches/{batch.id}")
    expect(page.locator("#batch-logs")).to_contain_text(batch.id, timeout=10_000)
    watch.assert_clean()
