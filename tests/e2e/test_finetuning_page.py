# ruff: noqa: F811
"""The /fine-tuning page in headless Chromium on the live gunicorn + qcluster pair.

An operator uploads a training file from the form, watches the job train (real LoRA training of
a tiny Llama on the worker) without reloading, and reads the result: loss curve, events,
checkpoints, the new model with its benchmark link. On a phone-sized screen nothing overflows.
"""

from __future__ import annotations

import json
import re

import pytest

from models_registry import builtin
from models_registry.services import register_model

# The browser fixtures of the admin page tests; tests take them as arguments, hence F811.
from tests.e2e.test_admin_pages import (  # noqa: F401
    admin_page,
    browser,
    page,
    sync_api,
    watch,
)
from tests.finetuning.tiny import make_tiny_model

expect = sync_api.expect

pytestmark = pytest.mark.cluster
TRAIN_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> str:
    smollm2 = builtin.resolve_path(builtin.BUILTIN_PATH)
    return str(make_tiny_model(smollm2, tmp_path_factory.mktemp("tiny") / "tiny-llama"))


def training_bytes() -> bytes:
    return "".join(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"What is {i} plus {i}?"},
                    {"role": "assistant", "content": str(2 * i)},
                ]
            }
        )
        + "\n"
        for i in range(12)
    ).encode()


def test_create_a_job_from_the_form_follow_it_and_read_the_result(
    admin_page, live_cluster, watch, tiny_folder
):
    page = admin_page
    register_model("tiny-e2e", tiny_folder, max_model_len=512)

    # given a job created from the form with an uploaded file
    page.goto("/fine-tuning")
    expect(page.locator("#ft-no-jobs")).to_be_visible()
    form = page.locator("#ft-create-form")
    form.locator("input[name=training_upload]").set_input_files(
        {"name": "train.jsonl", "mimeType": "application/jsonl", "buffer": training_bytes()}
    )
    form.locator("select[name=model]").select_option("tiny-e2e")
    form.locator("input[name=suffix]").fill("e2e")
    form.locator("input[name=n_epochs]").fill("1")
    form.locator("input[name=batch_size]").fill("4")
    form.locator("#ft-create").click()
    expect(page.locator(".messagelist")).to_contain_text("created; its file is being validated")

    # when the worker trains it, the jobs table follows it without a reload
    row = page.locator("tr.ft-job").first
    expect(row).to_have_attribute("data-status", "succeeded", timeout=TRAIN_TIMEOUT_MS)
    expect(row.locator(".ft-model")).to_contain_text("ft:tiny-e2e:")

    # then the job's page shows the curve, events, checkpoints and the model to benchmark
    page.reload()
    detail = page.locator("#ft-job-detail")
    expect(detail).to_have_attribute("data-status", "succeeded")
    expect(detail.locator("#ft-loss-chart")).to_be_visible()
    expect(detail.locator("#ft-events")).to_contain_text("Step 3/3: training loss=")
    expect(detail.locator("#ft-checkpoints tr[data-step='3']")).to_be_visible()
    link = detail.locator("#ft-benchmark-link")
    expect(link).to_have_attribute("href", re.compile(r"^/benchmark-runner\?models=ft%3Atiny-e2e"))

    # and on a phone-sized screen the page does not overflow sideways
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{overflow}px wider than the screen"
    watch.assert_clean()
