# ruff: noqa: F811
"""The /fine-tuning page in headless Chromium on the live gunicorn + qcluster pair.

An operator uploads a training file from the form, watches the job train (real LoRA training of
a tiny Llama on the worker) without reloading, and reads the result: loss curve, events,
checkpoints, the new model with its benchmark link. On a phone-sized screen nothing overflows.
Another job is made from a curation export chosen in the form; its result's benchmark link
opens the runner with the new model and its base chosen.
"""

from __future__ import annotations

import io
import json
import re

import pytest

from curation import services as curation
from curation.filters import RecordFilter
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


def test_a_job_from_a_curation_export_and_its_benchmark_link(
    admin_page, live_cluster, watch, tiny_folder
):
    page = admin_page
    register_model("tiny-e2e", tiny_folder, max_model_len=512)
    register_model("other-model")  # offered by the runner, and not chosen by the link
    # given a curation dataset whose 12 answers were reviewed and accepted
    lines = "".join(
        json.dumps(
            {
                "messages": [{"role": "user", "content": f"What is {i} plus {i}?"}],
                "answer": str(2 * i),
            }
        )
        + "\n"
        for i in range(12)
    )
    dataset = curation.create_dataset_from_upload(
        "reviewed sums", io.BytesIO(lines.encode()), created_by="ops"
    )
    curation.bulk_action(RecordFilter(dataset=dataset.pk), "accept", actor="ops")

    # when the form names the dataset's accepted records as the training data
    page.goto("/fine-tuning")
    form = page.locator("#ft-create-form")
    form.locator("select[name=curation_dataset]").select_option(label="reviewed sums")
    form.locator("select[name=curation_selection]").select_option("accepted")
    form.locator("select[name=model]").select_option("tiny-e2e")
    form.locator("input[name=n_epochs]").fill("1")
    form.locator("input[name=batch_size]").fill("4")
    form.locator("#ft-create").click()

    # then curation's export ran, and the job trains on it to the end
    expect(page.locator(".messagelist")).to_contain_text(
        "from 12 accepted records of curation dataset 'reviewed sums'"
    )
    row = page.locator("tr.ft-job").first
    expect(row).to_have_attribute("data-status", "succeeded", timeout=TRAIN_TIMEOUT_MS)
    model = row.locator(".ft-model").inner_text().strip()
    assert model.startswith("ft:tiny-e2e:")
    page.reload()
    expect(page.locator("#ft-job-detail")).to_contain_text("12 examples")

    # and "benchmark it against its base" opens the runner with both models chosen
    page.locator("#ft-benchmark-link").click()
    expect(page).to_have_url(re.compile(r"/benchmark-runner\?models=ft%3Atiny-e2e%3A.*,tiny-e2e$"))
    checkbox = "#bench-run-form input[name=models][value='{}']".format
    expect(page.locator(checkbox(model))).to_be_checked()
    expect(page.locator(checkbox("tiny-e2e"))).to_be_checked()
    expect(page.locator(checkbox("other-model"))).not_to_be_checked()
    watch.assert_clean()
