"""The operator pages in a real headless browser: admin console, API keys, registry, API docs.

The browser is Debian's Chromium (``apt-get install chromium``) driven by the ``playwright`` pip
package; ``playwright install`` (which downloads a browser build) is never used. Pages come from
the ``live_cluster`` gunicorn server with ``DEBUG`` off, so static files (admin CSS, the Swagger UI
and Redoc bundles of drf-spectacular-sidecar) are served by whitenoise from the ``collectstatic``
output the fixture writes — as in production, and unlike ``runserver``, which serves them only
in DEBUG. The browser may reach nothing but the server under test: every other request is
aborted and recorded, and host names do not resolve.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model

from tests.conftest import request_line
from tests.e2e.conftest import start_batch, wait_for_batch

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the pip package 'playwright' is not installed"
)
expect = sync_api.expect

pytestmark = pytest.mark.cluster

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    # No name resolves: a page that reaches for a CDN fails here instead of going out.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
SCREENSHOT = Path("/tmp/admin-batch.png")
TIMEOUT_MS = 15_000
ADMIN_PASSWORD = "e2e-admin-password"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's browser with `apt-get install chromium`"
        )
    # Playwright's sync API keeps an asyncio loop in this thread, so Django refuses the test's
    # own ORM calls (creating the admin user, flushing the tables) unless told that it is safe:
    # it is, nothing async touches the database. Playwright's docs give the same advice.
    with pytest.MonkeyPatch.context() as patch, sync_api.sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


class PageWatch:
    """What a page did that a person would notice: script errors, failed loads, outside calls."""

    def __init__(self) -> None:
        self.outside: list[str] = []
        self.failed: list[str] = []
        self.script_errors: list[str] = []
        self.blocked_by_policy: list[str] = []

    def request_failed(self, request) -> None:
        # ERR_ABORTED: the page was left before this load finished (an icon, say), not a fault.
        # "csp": the page's own Content-Security-Policy stopped it before anything was sent.
        if request.failure == "csp":
            self.blocked_by_policy.append(request.url)
        elif request.url not in self.outside and "ERR_ABORTED" not in (request.failure or ""):
            self.failed.append(f"{request.failure} {request.url}")

    def assert_clean(self) -> None:
        assert not self.script_errors, self.script_errors
        assert not self.failed, self.failed
        assert not self.outside, f"requests to outside hosts: {self.outside}"


@pytest.fixture
def watch() -> PageWatch:
    return PageWatch()


@pytest.fixture
def page(browser, live_cluster, watch) -> Iterator[object]:
    """A fresh browser tab on the live server that may reach nothing else, watched by ``watch``."""
    context = browser.new_context(
        base_url=live_cluster.url, viewport={"width": 1400, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)

    def guard(route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            watch.outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("pageerror", lambda error: watch.script_errors.append(str(error)))
    page.on(
        "response",
        lambda r: watch.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    page.on("requestfailed", watch.request_failed)
    yield page
    context.close()


@pytest.fixture
def admin_page(page):
    """``page``, logged in to the admin through its login form as a new superuser."""
    get_user_model().objects.create_superuser("operator", "operator@example.com", ADMIN_PASSWORD)
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    page.fill("#id_username", "operator")
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("#content h1")).to_have_text("Operations")
    return page


@pytest.fixture
def finished_batch(openai_client, live_cluster):
    """A batch of 10 requests (one failed by the engine) run by the worker to completion."""
    lines = [
        request_line(i, content=f"question {i}" + (" [[fail]]" if i == 3 else ""))
        for i in range(10)
    ]
    batch = start_batch(openai_client, lines)
    done = wait_for_batch(openai_client, batch.id, live_cluster)
    assert done.status == "completed"
    return done


def test_admin_batch_pages_show_status_progress_and_file_links(admin_page, finished_batch, watch):
    page, batch = admin_page, finished_batch

    # the Batches changelist shows the batch with its status and progress
    page.goto("/admin/jobs/batch/")
    row = page.locator("#result_list tbody tr", has_text=batch.id)
    expect(row).to_have_count(1)
    expect(row.locator("td.field-status")).to_have_text(re.compile("^completed$", re.I))
    expect(row.locator("td.field-progress")).to_have_text("10/10 (1 failed)")
    expect(row.locator("td.field-model")).to_have_text("fake-model")

    # its detail page links to its input, output and error files
    row.get_by_role("link", name=batch.id).click()
    batch_url = f"/admin/jobs/batch/{quote(batch.id)}/change/"  # the admin escapes "_" as "_5F"
    expect(page).to_have_url(re.compile(re.escape(batch_url) + "$"))
    expect(page.locator("#content h2")).to_have_text(f"{batch.id} (completed)")
    links = {
        "input": (batch.input_file_id, "input.jsonl"),
        "output": (batch.output_file_id, f"{batch.id}_output.jsonl"),
        "error": (batch.error_file_id, f"{batch.id}_error.jsonl"),
    }
    for kind, (file_id, _) in links.items():
        link = page.locator(f".field-{kind}_file_link a")
        expect(link).to_have_text(file_id)
        expect(link).to_have_attribute("href", f"/admin/jobs/file/{file_id}/change/")
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # and every link opens that file's page
    for kind, (file_id, filename) in links.items():
        page.goto(batch_url)
        page.locator(f".field-{kind}_file_link a").click()
        expect(page).to_have_url(re.compile(rf"/admin/jobs/file/{file_id}/change/$"))
        expect(page.locator(".field-filename .readonly")).to_have_text(filename)

    # the Files list shows the uploaded input and both result files
    page.goto("/admin/jobs/file/")
    for file_id, filename in links.values():
        file_row = page.locator("#result_list tbody tr", has_text=file_id)
        expect(file_row.locator("td.field-filename")).to_have_text(filename)
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    watch.assert_clean()
    assert SCREENSHOT.stat().st_size > 10_000


def test_admin_api_keys_and_model_registry(admin_page, live_api_key, watch):
    page = admin_page

    # the API keys page lists the key by name and prefix, never the key itself
    page.goto("/admin/batchserver/apikey/")
    row = page.locator("#result_list tbody tr", has_text="e2e")
    expect(row.locator("td.field-prefix")).to_have_text(live_api_key[:12])
    expect(page.locator("body")).not_to_contain_text(live_api_key)

    # the model registry lists the registered model
    page.goto("/admin/models_registry/model/")
    model_row = page.locator("#result_list tbody tr", has_text="fake-model")
    expect(model_row).to_have_count(1)
    model_row.get_by_role("link", name="fake-model").click()
    expect(page.locator("#id_name")).to_have_value("fake-model")
    watch.assert_clean()


def test_swagger_ui_renders_the_operations_offline(page, watch):
    page.goto("/api/docs/")
    paths = page.locator(".opblock .opblock-summary-path")
    expect(paths.first).to_be_visible()
    shown = set(paths.evaluate_all("nodes => nodes.map(n => n.dataset.path)"))
    assert {
        "/v1/files",
        "/v1/files/{file_id}/content",
        "/v1/batches",
        "/v1/batches/{batch_id}",
        "/v1/batches/{batch_id}/cancel",
        "/v1/models",
    } <= shown
    expect(page.locator(".info .title")).to_contain_text("batchserver API")
    watch.assert_clean()


def test_redoc_renders_offline(page, watch):
    page.goto("/api/redoc/")
    expect(page.locator("h1", has_text="batchserver API")).to_be_visible()
    expect(page.get_by_text("/v1/batches/{batch_id}/cancel").first).to_be_attached()
    watch.assert_clean()


def test_redoc_requests_nothing_from_outside(page, watch):
    page.goto("/api/redoc/")
    expect(page.locator("h1", has_text="batchserver API")).to_be_visible()
    assert not watch.outside, watch.outside


def test_file_page_content_link_downloads_the_file(admin_page, finished_batch, openai_client):
    page = admin_page
    page.goto(f"/admin/jobs/file/{finished_batch.output_file_id}/change/")
    link = page.locator(".field-download a")
    expect(link).to_have_count(1)
    # the browser's own session (the admin login) fetches what the link points at
    response = page.request.get(link.get_attribute("href"))
    assert response.status == 200, f"{response.status} {response.url}"
    assert "attachment" in response.headers["content-disposition"]
    expected = openai_client.files.content(finished_batch.output_file_id).content
    assert response.body() == expected
