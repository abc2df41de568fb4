# ruff: noqa: F811
"""The registry pages in headless Chromium on the live gunicorn + qcluster pair (fake engine),
and ``/v1/models`` through the official openai SDK.

An operator adds a model folder from ``/add-model``, tests it from its page (the test batch runs
on the real worker; the page follows it without reloading), registers a variant, and finds both
on ``/model-management``; a download's progress moves on ``/add-model`` as the import advances.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from models_registry.models import ModelImport
from models_registry.services import register_variant
from tests.conftest import FAKE_MODEL, request_line
from tests.e2e.conftest import start_batch, wait_for_batch

# The browser fixtures of the admin page tests; tests take them as arguments, hence F811.
from tests.e2e.test_admin_pages import (  # noqa: F401
    admin_page,
    browser,
    page,
    sync_api,
    watch,
)
from tests.models_registry.conftest import model_folder, smollm2_folder  # noqa: F401

expect = sync_api.expect

pytestmark = pytest.mark.cluster

LIVE_TIMEOUT_MS = 30_000
SCREENSHOTS = Path("/tmp")


def test_registry_pages_are_staff_only(page, watch):
    for url in ("/model-management", "/add-model", f"/models/{FAKE_MODEL}"):
        page.goto(url)
        expect(page).to_have_url(re.compile(r"/admin/login/\?next=" + re.escape(url) + "$"))
    assert not watch.outside and not watch.script_errors


def test_add_a_folder_test_it_make_a_variant_and_see_them_listed(
    admin_page, live_cluster, model_folder, watch
):
    page = admin_page

    # given a model folder added from the page
    page.goto("/add-model")
    form = page.locator("#add-model-form")
    form.locator("input[name=source_kind][value=folder]").check()
    form.locator("input[name=source]").fill(str(model_folder))
    form.locator("input[name=name]").fill("e2e-model")
    form.locator("select[name=dtype]").select_option("float32")
    page.click("#add-submit")
    expect(page).to_have_url(re.compile(r"/models/e2e-model$"))
    expect(page.locator(".messagelist")).to_contain_text("Model e2e-model added.")
    expect(page.locator("#model-test-status")).to_have_text("untested")

    # when it is tested from its page
    page.evaluate("window.__noReload = true")
    page.locator("#model-test-form textarea[name=prompts]").fill("hello world\nsecond prompt")
    page.click("#model-test-button")
    expect(page.locator(".messagelist")).to_contain_text("queued")
    page.evaluate("window.__noReload = true")

    # then the page follows the test batch on the worker until it passed, with the answers
    test = page.locator(".model-test").first
    expect(test).to_have_attribute("data-status", "passed", timeout=LIVE_TIMEOUT_MS)
    expect(test.locator(".test-answers")).to_contain_text("echo: hello world")
    expect(test.locator(".test-answers")).to_contain_text("echo: second prompt")
    expect(test.locator(".test-figures")).to_contain_text("tokens out")
    # the fake engine runs inside the worker's own process: no peak of its own to sample
    expect(test.locator(".test-figures")).to_contain_text("peak memory –")
    expect(page.locator("#model-test-status")).to_have_text("passed")
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"
    page.screenshot(path=str(SCREENSHOTS / "model-page.png"), full_page=True)

    # when a variant with a shorter context is registered from the same page
    variant = page.locator("#model-variant-form")
    variant.locator("input[name=name]").fill("e2e-model-ctx512")
    variant.locator("input[name=max_model_len]").fill("512")
    page.click("#model-variant-submit")
    expect(page).to_have_url(re.compile(r"/models/e2e-model-ctx512$"))
    expect(page.locator("#model-lineage li")).to_have_count(2)
    expect(page.locator("#model-settings")).to_contain_text("512")

    # then the management page lists both, the variant with its parent
    page.goto("/model-management")
    row = page.locator("tr.model-row[data-model='e2e-model-ctx512']")
    expect(row).to_contain_text("variant v1 of e2e-model")
    expect(page.locator("tr.model-row[data-model='e2e-model']")).to_have_attribute(
        "data-test", "passed"
    )
    page.screenshot(path=str(SCREENSHOTS / "model-management.png"), full_page=True)

    # and on a phone the pages fit the screen (tables scroll inside their box)
    page.set_viewport_size({"width": 390, "height": 844})
    for url in ("/model-management", "/models/e2e-model", "/add-model"):
        page.goto(url)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (url, overflow)
    watch.assert_clean()


def test_a_broken_folder_is_refused_on_the_page_with_the_reason(admin_page, model_folder, watch):
    page = admin_page
    (model_folder / "config.json").unlink()
    page.goto("/add-model")
    page.locator("#add-model-form input[name=source]").fill(str(model_folder))
    page.click("#add-submit")
    expect(page.locator("#add-problem")).to_contain_text("has no config.json")
    watch.failed.clear()  # the refusal is a 400, on purpose
    watch.assert_clean()


def test_an_imports_progress_moves_without_reloading(admin_page, live_cluster, watch):
    page = admin_page
    job = ModelImport.objects.create(
        name="org--big",
        source_kind="hub",
        source="org/big",
        status="downloading",
        done_bytes=10 * 2**20,
        total_bytes=40 * 2**20,
    )
    page.goto("/add-model")
    page.evaluate("window.__noReload = true")
    row = page.locator(f"tr.import-row[data-import='{job.pk}']")
    expect(row.locator(".progress")).to_contain_text("25%")

    # when the download advances, then fails, the page shows it on its own
    job.report_progress(30 * 2**20, 40 * 2**20)
    expect(row.locator(".progress")).to_contain_text("75%", timeout=LIVE_TIMEOUT_MS)
    job.transition("failed", error="org--big: Could not download 'org/big': connection reset")
    expect(row).to_have_attribute("data-status", "failed", timeout=LIVE_TIMEOUT_MS)
    expect(row.locator(".import-error")).to_contain_text("connection reset")
    expect(row.locator(".import-retry")).to_be_visible()
    assert page.evaluate("window.__noReload === true")
    watch.assert_clean()


def test_v1_models_through_the_openai_sdk_has_lineage_and_usage(openai_client, live_cluster):
    # given a batch on the fake model, and a variant of it
    batch = start_batch(openai_client, [request_line(i) for i in range(3)])
    assert wait_for_batch(openai_client, batch.id, live_cluster).status == "completed"
    from models_registry.services import get_model

    register_variant(get_model(FAKE_MODEL), name="fake-model-f16", dtype="float16")

    # when a client lists and retrieves models with the official SDK
    models = {m.id: m for m in openai_client.models.list()}
    variant = openai_client.models.retrieve("fake-model-f16")
    base = openai_client.models.retrieve(FAKE_MODEL)

    # then OpenAI's fields are there, and the extensions ride along
    assert models["fake-model-f16"].owned_by == "batchserver"
    assert isinstance(models["fake-model-f16"].created, int)
    extra = models["fake-model-f16"].model_extra
    assert extra["parent"] == FAKE_MODEL and extra["origin"] == "variant"
    assert extra["base"] == FAKE_MODEL and extra["version"] == 1
    assert variant.model_extra["usage"]["batches"] == 0
    usage = base.model_extra["usage"]
    assert usage["batches"] == 1 and usage["requests"] == 3 and usage["output_tokens"] > 0
    assert usage["last_used_at"] == batch.created_at
