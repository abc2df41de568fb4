"""The pages through Django's test client: forms, messages, the htmx part, charts, exports."""

from __future__ import annotations

import csv
import io
import re

from benchmarks.models import Dataset, GpuPrice, Run
from tests.benchmarks.conftest import dataset_jsonl
from tests.conftest import csrf_token


def post(client, url, data, **kwargs):
    return client.post(url, {**data, "csrfmiddlewaretoken": csrf_token(client)}, **kwargs)


def start(staff_client, capture, **data):
    with capture(execute=True):
        return post(
            staff_client,
            "/benchmark-runner",
            {
                "action": "start",
                "dataset": Dataset.objects.get(name="builtin/capitals").pk,
                "models": ["fake-a", "fake-b"],
                "temperature": "0",
                "max_tokens": "8",
                "repetitions": "1",
                "scorers": ["exact_match", "contains"],
                **data,
            },
        )


def test_the_runner_page_offers_datasets_models_and_scorers(staff_client, two_models):
    page = staff_client.get("/benchmark-runner").content.decode()
    assert "builtin/arithmetic (20 prompts)" in page and "builtin/capitals" in page
    assert 'value="fake-a"' in page and 'value="rouge_l"' in page
    assert "No benchmark run yet." in page


def test_a_link_preselects_models_and_dataset(staff_client, two_models):
    # a link such as the fine-tuning page's "benchmark it against its base"
    page = staff_client.get("/benchmark-runner?models=fake-b,fake-a&dataset=builtin/capitals")
    html = page.content.decode()
    checked = re.findall(r'<input type="checkbox" name="models" value="([^"]+)"[^>]*checked', html)
    assert sorted(checked) == ["fake-a", "fake-b"]
    capitals = Dataset.objects.get(name="builtin/capitals").pk
    assert re.search(rf'<option value="{capitals}" selected>builtin/capitals', html)

    # the same with models repeated; an unknown dataset or model leaves the default
    page = staff_client.get("/benchmark-runner?models=fake-a&models=gone&dataset=nope")
    html = page.content.decode()
    assert page.status_code == 200
    checked = re.findall(r'<input type="checkbox" name="models" value="([^"]+)"[^>]*checked', html)
    assert checked == ["fake-a"]
    assert " selected>" not in html.split('name="dataset"')[1].split("</select>")[0]


def test_starting_a_run_from_the_page_redirects_to_it_and_lists_it(
    staff_client, two_models, django_capture_on_commit_callbacks
):
    staff_client.get("/benchmark-runner")  # creates the shipped datasets
    response = start(staff_client, django_capture_on_commit_callbacks)
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"?run={run.pk}")
    page = staff_client.get(response["Location"]).content.decode()
    assert f"Benchmark run {run.pk} started." in page
    assert f'data-run="{run.pk}" data-status="completed"' in page
    assert "40/40 (100%)" in page
    # the live part alone, as htmx asks for it; no more polling once nothing is active
    part = staff_client.get("/benchmark-runner", headers={"HX-Request": "true"}).content.decode()
    assert part.startswith('<div id="bench-runs"') and "hx-trigger" not in part


def test_an_unknown_model_is_refused_beside_the_form(staff_client, two_models):
    # a model that is not (or no longer) offered, e.g. deactivated after the page was loaded
    staff_client.get("/benchmark-runner")
    response = post(
        staff_client,
        "/benchmark-runner",
        {
            "action": "start",
            "dataset": Dataset.objects.get(name="builtin/arithmetic").pk,
            "models": ["fake-a", "gpt-9"],
            "max_tokens": "8",
            "temperature": "0",
            "repetitions": "1",
            "scorers": ["contains"],
        },
    )
    assert response.status_code == 400
    assert "gpt-9 is not one of the available choices." in response.content.decode()
    assert not Run.objects.exists()


def test_a_bad_number_is_shown_beside_the_form(staff_client, two_models):
    staff_client.get("/benchmark-runner")
    response = post(
        staff_client,
        "/benchmark-runner",
        {
            "action": "start",
            "dataset": Dataset.objects.get(name="builtin/arithmetic").pk,
            "models": ["fake-a"],
            "max_tokens": "lots",
            "temperature": "0",
            "repetitions": "1",
            "scorers": ["contains"],
        },
    )
    assert response.status_code == 400
    assert "max_tokens must be a number, not &#x27;lots&#x27;." in response.content.decode()
    assert not Run.objects.exists()


def test_a_malformed_upload_lists_its_bad_lines(staff_client):
    bad = io.BytesIO(b'{"messages": [{"role": "user", "content": "x"}]}\nnot json\n{"id": 3}\n')
    bad.name = "bad.jsonl"
    response = post(
        staff_client, "/benchmark-runner", {"action": "upload", "name": "b", "file": bad}
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert "<li>line 2: not valid JSON" in page and "<li>line 3: &#x27;messages&#x27;" in page
    assert not Dataset.objects.filter(name="b").exists()


def test_an_empty_upload_is_refused_with_a_message(staff_client):
    for content, message in (
        (b"", "The submitted file is empty."),
        (b"\n  \n", "has no prompt"),
    ):
        empty = io.BytesIO(content)
        empty.name = "empty.jsonl"
        response = post(
            staff_client, "/benchmark-runner", {"action": "upload", "name": "e", "file": empty}
        )
        assert response.status_code == 400, content
        assert message in response.content.decode()
    assert not Dataset.objects.filter(name="e").exists()


def test_an_upload_from_the_page_makes_a_dataset(staff_client):
    good = io.BytesIO(dataset_jsonl(3))
    good.name = "good.jsonl"
    response = post(
        staff_client, "/benchmark-runner", {"action": "upload", "name": "g", "file": good}
    )
    assert response.status_code == 302 and Dataset.objects.get(name="g").item_count == 3


def test_the_comparison_shows_summary_charts_matrix_and_history(
    staff_client, two_models, django_capture_on_commit_callbacks, settings
):
    settings.BATCH_LOAD_BACKOFF_SECONDS = 0
    from models_registry.services import register_model

    register_model("fake-broken", extra_args={"fake_fail_load": True})
    staff_client.get("/benchmark-runner")
    start(staff_client, django_capture_on_commit_callbacks, models=["fake-a", "fake-broken"])
    run = Run.objects.get()
    page = staff_client.get(f"/model-comparison?runs={run.pk}").content.decode()
    # summary: one row per model; the broken one shows its error
    assert 'data-model="fake-a" data-status="completed"' in page
    assert 'data-model="fake-broken" data-status="failed"' in page and "failed to load" in page
    # charts drawn on the server
    assert 'id="chart-throughput"' in page and 'id="chart-quality"' in page
    assert 'id="chart-history"' in page and "<svg" in page
    # the matrix: a row per prompt, a column per model, reference and scores
    assert page.count('class="bench-sample"') == 20
    assert page.count('class="bench-column"') == 2
    assert '<td class="bench-reference">Paris</td>' in page
    assert "echo: Answer with the name of the city" in page  # 8 words: max_tokens 8
    assert "contains: 0.00" in page


def test_the_matrix_exports_as_csv_and_json(
    staff_client, two_models, django_capture_on_commit_callbacks
):
    staff_client.get("/benchmark-runner")
    start(staff_client, django_capture_on_commit_callbacks)
    run = Run.objects.get()
    response = staff_client.get(f"/model-comparison/export.csv?runs={run.pk}")
    assert response["Content-Disposition"].startswith("attachment; filename=")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:4] == ["id", "prompt", "reference", "tags"]
    assert (
        f"fake-a (run {run.pk}) answer" in rows[0] and f"fake-b (run {run.pk}) contains" in rows[0]
    )
    assert len(rows) == 21 and rows[1][:3] == [
        "capital-01",
        "What is the capital of France?",
        "Paris",
    ]
    data = staff_client.get(f"/model-comparison/export.json?runs={run.pk}").json()
    assert len(data["rows"]) == 20 and data["rows"][0]["cells"][1]["scores"]["exact_match"] == 0.0
    assert staff_client.get(f"/model-comparison/export.xml?runs={run.pk}").status_code == 404


def test_prices_are_set_on_the_page_and_a_bad_one_gets_a_message(staff_client):
    response = post(
        staff_client,
        "/model-comparison",
        {"action": "gpu_price", "kind": "L4", "hourly_price": "abc"},
    )
    assert response.status_code == 400
    assert "hourly_price must be a number (for example 2.50), not &#x27;abc&#x27;." in (
        response.content.decode()
    )
    assert not GpuPrice.objects.exists()
    response = post(
        staff_client,
        "/model-comparison",
        {"action": "gpu_price", "kind": "L4", "hourly_price": "0.80"},
    )
    assert response.status_code == 302 and GpuPrice.objects.get().kind == "L4"
    response = post(
        staff_client,
        "/model-comparison",
        {
            "action": "cloud_price",
            "name": "batch",
            "input_per_million": "0.1",
            "output_per_million": "x",
        },
    )
    assert "output_per_million must be a number" in response.content.decode()


def test_the_console_navigation_reaches_both_pages(staff_client):
    hub = staff_client.get("/model-comparison").content.decode()
    assert 'href="/benchmark-runner"' in hub and 'aria-current="page"' in hub


def test_the_admin_lists_datasets_runs_and_prices(
    staff_client, two_models, django_capture_on_commit_callbacks
):
    staff_client.get("/benchmark-runner")
    start(staff_client, django_capture_on_commit_callbacks)
    run = Run.objects.get()
    for url in (
        "/admin/benchmarks/",
        "/admin/benchmarks/run/",
        f"/admin/benchmarks/run/{run.pk}/change/",
        "/admin/benchmarks/dataset/",
        "/admin/benchmarks/gpuprice/add/",
    ):
        assert staff_client.get(url).status_code == 200, url
    # a price that is not a number, in the admin's own form
    response = post(
        staff_client, "/admin/benchmarks/gpuprice/add/", {"kind": "L4", "hourly_price": "cheap"}
    )
    assert response.status_code == 200 and "Enter a number." in response.content.decode()
    assert not GpuPrice.objects.exists()
