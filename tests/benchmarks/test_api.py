"""The staff API (/v1/benchmarks…, /admin/benchmarks/…): staff sessions only, OpenAI errors."""

from __future__ import annotations

import io

import pytest

from benchmarks.models import Dataset, Run
from tests.benchmarks.conftest import dataset_jsonl
from tests.conftest import csrf_token

STAFF_URLS = [
    ("get", "/v1/benchmarks/runs"),
    ("post", "/v1/benchmarks/runs"),
    ("get", "/v1/benchmarks/datasets"),
    ("get", "/v1/benchmarks/prices"),
    ("get", "/v1/benchmarks/scorers"),
    ("get", "/v1/benchmarks/compare?runs=1"),
    ("post", "/admin/benchmarks/run"),
    ("get", "/admin/benchmarks/status/1"),
    ("get", "/admin/workbench/benchmark-history"),
]


@pytest.mark.parametrize(("method", "url"), STAFF_URLS)
def test_an_api_key_sees_nothing_of_benchmarks(client_api, method, url):
    response = getattr(client_api, method)(url, {}, format="json")
    assert response.status_code in (401, 403)
    assert "error" in response.json() and "data" not in response.json()


@pytest.mark.parametrize(("method", "url"), STAFF_URLS)
def test_a_logged_in_user_who_is_not_staff_is_refused(client, django_user_model, method, url):
    user = django_user_model.objects.create_user("visitor", password="a-long-password-123")
    client.force_login(user)
    assert getattr(client, method)(url).status_code == 403


@pytest.mark.parametrize(
    "url", ["/benchmark-runner", "/model-comparison", "/model-comparison/export.csv"]
)
def test_pages_send_anonymous_visitors_to_the_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def post_json(staff_client, url, data):
    return staff_client.post(
        url,
        data,
        content_type="application/json",
        headers={"X-CSRFToken": csrf_token(staff_client)},
    )


def test_staff_starts_a_run_and_follows_it_to_its_results(
    staff_client, two_models, django_capture_on_commit_callbacks
):
    # when a run is started through the endpoint of the system we replace
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(
            staff_client,
            "/admin/benchmarks/run",
            {
                "dataset": "builtin/capitals",
                "models": ["fake-a", "fake-b"],
                "max_tokens": 8,
            },
        )
    assert response.status_code == 201, response.content
    run_id = response.json()["id"]

    # then its status shows it completed, with figures per model
    status = staff_client.get(f"/admin/benchmarks/status/{run_id}").json()
    assert status["status"] == "completed" and status["created_by"] == "ops"
    assert status["progress"]["done"] == status["progress"]["total"] == 40
    assert [r["model"] for r in status["results"]] == ["fake-a", "fake-b"]
    assert all(r["output_tokens_per_second"] > 0 for r in status["results"])
    assert status["results"][0]["quality"].keys() == {"exact_match", "contains", "regex", "rouge_l"}
    # and the history and the samples know it
    history = staff_client.get("/admin/workbench/benchmark-history").json()
    assert [r["id"] for r in history["data"]] == [run_id]
    assert set(history["models"]) == {"fake-a", "fake-b"}
    samples = staff_client.get(f"/v1/benchmarks/runs/{run_id}/samples").json()
    assert len(samples["rows"]) == 20 and len(samples["rows"][0]["cells"]) == 2
    assert samples["rows"][0]["reference"] == "Paris"


def test_unknown_model_and_dataset_are_clear_errors(staff_client, two_models):
    response = post_json(
        staff_client, "/v1/benchmarks/runs", {"dataset": "builtin/arithmetic", "models": ["gpt-9"]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "models"
    assert "Unknown model 'gpt-9'" in response.json()["error"]["message"]
    response = post_json(
        staff_client, "/v1/benchmarks/runs", {"dataset": "nope", "models": ["fake-a"]}
    )
    assert response.status_code == 404 and response.json()["error"]["param"] == "dataset"
    assert not Run.objects.exists()


def test_a_malformed_upload_lists_its_lines_and_saves_nothing(staff_client):
    bad = io.BytesIO(b'{"messages": [{"role": "user", "content": "ok"}]}\n{oops\n[]\n')
    bad.name = "bad.jsonl"
    response = staff_client.post(
        "/v1/benchmarks/datasets",
        {"name": "bad", "file": bad},
        headers={"X-CSRFToken": csrf_token(staff_client)},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_dataset" and [x["line"] for x in error["lines"]] == [2, 3]
    assert not Dataset.objects.filter(name="bad").exists()


def test_an_upload_makes_a_dataset(staff_client):
    good = io.BytesIO(dataset_jsonl(4))
    good.name = "good.jsonl"
    response = staff_client.post(
        "/v1/benchmarks/datasets",
        {"name": "good", "file": good},
        headers={"X-CSRFToken": csrf_token(staff_client)},
    )
    assert response.status_code == 201 and response.json()["item_count"] == 4
    detail = staff_client.get(f"/v1/benchmarks/datasets/{response.json()['id']}").json()
    assert detail["items"][1] == {
        "id": "q1",
        "messages": [{"role": "user", "content": "question 1"}],
        "reference": "question 1",
        "tags": ["t"],
    }


def test_an_empty_upload_is_refused(staff_client):
    empty = io.BytesIO(b"")
    empty.name = "empty.jsonl"
    response = staff_client.post(
        "/v1/benchmarks/datasets",
        {"name": "empty", "file": empty},
        headers={"X-CSRFToken": csrf_token(staff_client)},
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "empty_dataset"


def test_a_price_that_is_not_a_number_is_a_clear_400(staff_client):
    response = post_json(
        staff_client, "/v1/benchmarks/prices/gpu", {"kind": "A100", "hourly_price": "two dollars"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "hourly_price must be a number (for example 2.50), not 'two dollars'."
    )
    response = post_json(
        staff_client, "/v1/benchmarks/prices/gpu", {"kind": "A100", "hourly_price": "1.80"}
    )
    assert response.json()["gpu"] == [{"kind": "A100", "hourly_price": 1.8}]


def test_a_cloud_price_that_is_not_a_number_names_its_field(staff_client):
    response = post_json(
        staff_client,
        "/v1/benchmarks/prices/cloud",
        {"name": "batch", "input_per_million": "0.10", "output_per_million": "free"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "output_per_million"
    assert error["message"] == (
        "output_per_million must be a number (for example 2.50), not 'free'."
    )
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert staff_client.get("/v1/benchmarks/prices").json()["cloud"] == []


def test_csrf_is_required_for_a_session(staff_client, two_models):
    response = staff_client.post(
        "/admin/benchmarks/run", {"dataset": "builtin/arithmetic"}, content_type="application/json"
    )
    assert response.status_code == 403


def test_the_api_is_browsable_for_staff(staff_client):
    response = staff_client.get("/v1/benchmarks/runs", headers={"Accept": "text/html"})
    assert response.status_code == 200 and b"Runs" in response.content


def test_cancel_of_an_ended_run_is_a_conflict(
    staff_client, two_models, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run_id = post_json(
            staff_client,
            "/v1/benchmarks/runs",
            {"dataset": "builtin/arithmetic", "models": ["fake-a"]},
        ).json()["id"]
    response = post_json(staff_client, f"/v1/benchmarks/runs/{run_id}/cancel", {})
    assert response.status_code == 409 and response.json()["error"]["code"] == "run_not_cancellable"
