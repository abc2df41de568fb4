"""Batch Submitter end to end (Django test client): preview, submit, the batch runs."""

from __future__ import annotations

import io
import json
import re

import pytest

from jobs.services import results
from plugins import services
from tests.conftest import FAKE_MODEL
from tests.plugins.contrib import enable, post_page

URL = "/plugins/batch-submitter/submit"


@pytest.fixture
def submitter(db, model):
    enable("batch-submitter")


def test_the_plugin_is_found_through_its_installed_entry_point(db):
    found = services.get_plugin("batch-submitter")
    assert found["source"].startswith("entry point batch-submitter = batchserver_batch_submitter")
    assert found["hook_types"] == ["ui"] and found["loadable"]


def test_preview_shows_the_jsonl_and_submits_nothing(staff_client, submitter):
    page = post_page(
        staff_client,
        URL,
        {
            "action": "preview",
            "model": FAKE_MODEL,
            "mode": "lines",
            "prompts": "one\ntwo\n\nthree",
            "temperature": "0.2",
            "max_tokens": "32",
        },
    ).content.decode()
    assert "3 requests" in page
    preview = re.search(
        r'<pre class="plugin-code" id="jsonl-preview"><code>(.*?)</code>', page, re.S
    )
    first = json.loads(preview.group(1).splitlines()[0].replace("&quot;", '"'))
    assert first == {
        "custom_id": "prompt-1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": FAKE_MODEL,
            "messages": [{"role": "user", "content": "one"}],
            "temperature": 0.2,
            "max_tokens": 32,
        },
    }
    assert "Batch batch_" not in page
    assert "Nothing submitted yet." in services.render_component("batch-submitter", "recent", {})


def test_submit_runs_a_batch_with_the_console_key(
    staff_client, submitter, django_capture_on_commit_callbacks
):
    csv_text = "id,text\na,the sky\nb,the sea\n"
    with django_capture_on_commit_callbacks(execute=True):
        page = post_page(
            staff_client,
            URL,
            {
                "action": "submit",
                "model": FAKE_MODEL,
                "mode": "csv",
                "template": "Describe {text}.",
                "system": "Be brief.",
                "max_tokens": "16",
                "temperature": "0",
            },
            {"upload": io.BytesIO(csv_text.encode())},
        ).content.decode()
    batch_id = re.search(r'href="/batches/(batch_[A-Za-z0-9]+)"', page).group(1)
    assert "submitted with 2 requests" in page

    batch = results.get_batch(batch_id)
    assert batch.status == "completed" and batch.request_total == 2
    assert batch.owner.internal and batch.owner.name == "console"
    assert batch.metadata == {"source": "batch-submitter", "submitted_by": "ops"}
    rows = list(results.iter_results(batch_id))
    assert [r.custom_id for r in rows] == ["a", "b"]
    assert results.prompt_messages(rows[0].body) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Describe the sky."},
    ]
    assert results.answer_text(rows[1].response_body).startswith(
        "echo: Be brief. Describe the sea."
    )

    # and the component lists it, linking to its page
    html = services.render_component("batch-submitter", "recent", {})
    assert f'href="/batches/{batch_id}"' in html


def test_mistakes_are_explained_not_submitted(staff_client, submitter):
    page = post_page(
        staff_client,
        URL,
        {
            "action": "submit",
            "model": FAKE_MODEL,
            "mode": "csv",
            "prompts": "text\nhello\n",
            "template": "Say {missing}",
        },
    ).content.decode()
    assert "The template names columns the CSV does not have: missing" in page
    page = post_page(
        staff_client, URL, {"action": "submit", "model": "", "prompts": "x"}
    ).content.decode()
    assert "Pick a model." in page
    page = post_page(
        staff_client,
        URL,
        {"action": "submit", "model": FAKE_MODEL, "prompts": "x", "temperature": "hot"},
    ).content.decode()
    assert "Temperature must be a number." in page
