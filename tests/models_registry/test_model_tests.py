"""Testing a model: a few prompts as an ordinary console batch, its figures, and what a failed
test means for clients (``POST /admin/models/test``, ``GET /admin/models/test/{id}``).

The fake engine runs the batch inline (django-q2 sync mode): the whole pipeline — validation,
chunks, the worker's engine, the status signal, the finishing task — runs inside the request.
"""

from __future__ import annotations

import pytest

from batchserver.models import ApiKey
from jobs.services.results import get_batch
from jobs.worker.engine.manager import get_engine
from models_registry import model_tests
from models_registry.models import Model, ModelTest
from models_registry.services import register_model
from tests.conftest import FAKE_MODEL, jsonl, request_line

TEST = "/admin/models/test"


@pytest.fixture(autouse=True)
def _no_model_loaded():
    """Each test starts with nothing loaded in this process's engine, as on a fresh worker: a
    model test then measures the load it causes (an earlier test may have left the model up)."""
    get_engine().shutdown()


def test_a_model_test_runs_through_the_batch_pipeline_and_records_its_figures(
    staff_post, staff_client, model, monkeypatch
):
    # given an engine that takes 10 ms per request (the fake engine's pace)
    monkeypatch.setenv("FAKE_DELAY_PER_REQUEST_MS", "10")

    # when an operator tests the model
    response = staff_post(TEST, {"model": FAKE_MODEL})

    # then the test was queued as a batch of the console key, tagged as a model test …
    assert response.status_code == 202, response.content
    started = response.json()
    batch = get_batch(started["batch_id"])
    assert batch.owner == ApiKey.console_key() and batch.metadata["kind"] == "model_test"
    assert batch.status == "completed"

    # … and its result holds the answers and the figures the worker measured
    result = staff_client.get(f"{TEST}/{started['id']}").json()
    assert result["status"] == "passed" and result["error"] is None
    assert [a["prompt"] for a in result["answers"]] == list(model_tests.DEFAULT_PROMPTS)
    assert all(a["answer"].startswith("echo: ") and a["error"] is None for a in result["answers"])
    tokens = sum(a["output_tokens"] for a in result["answers"])
    assert result["output_tokens"] == tokens > 0
    # three requests in one engine call of 3 × 10 ms
    assert result["output_tokens_per_second"] == pytest.approx(tokens / 0.030, rel=0.01)
    assert result["load_seconds"] is not None and result["load_seconds"] >= 0
    model.refresh_from_db()
    assert model.test_status == "passed" and model.last_loaded_at is not None


def test_a_model_test_records_the_engines_peak_memory_over_its_load_and_prompts(
    staff_post, staff_client, model, settings
):
    # given the engine in a host process of its own, as the real one runs (its memory can be
    # sampled), and a prompt that makes it hold 96 MiB for a moment while it answers
    settings.BATCHSERVER_ENGINE = "fake-hosted"
    try:
        # when the model is tested
        started = staff_post(
            TEST, {"model": FAKE_MODEL, "prompts": ["hello", "hold this [[hold:96]]"]}
        ).json()
    finally:
        get_engine().shutdown()

    # then its peak is the engine's during the prompts, above its memory once ready, and the
    # answer says what the figure is and over which span
    result = staff_client.get(f"{TEST}/{started['id']}").json()
    assert result["status"] == "passed" and result["loaded_for_test"]
    held = result["peak_memory_bytes"] - result["ready_memory_bytes"]
    assert held == pytest.approx(96 * 2**20, abs=24 * 2**20)
    assert "sampled every 100 ms" in result["peak_memory_measure"]
    assert "over the load and this test's batch" in result["peak_memory_measure"]
    model.refresh_from_db()
    assert model.last_peak_memory_bytes == result["peak_memory_bytes"]
    assert model.last_load_memory_bytes == result["ready_memory_bytes"]
    # and the model's page shows both figures, with what the peak is
    page = staff_client.get(f"/models/{FAKE_MODEL}").content.decode()
    assert 'class="test-peak-memory"' in page and "once ready" in page
    assert "Peak memory: the highest sum of the resident memory (RSS)" in page


def test_a_model_test_on_an_engine_in_the_workers_own_process_has_no_peak(
    staff_post, staff_client, model
):
    started = staff_post(TEST, {"model": FAKE_MODEL}).json()
    result = staff_client.get(f"{TEST}/{started['id']}").json()
    assert result["peak_memory_bytes"] is None and result["peak_memory_measure"] is None


def test_a_client_never_sees_the_test_batch(staff_post, client_api, model):
    started = staff_post(TEST, {"model": FAKE_MODEL}).json()
    listed = client_api.get("/v1/batches").json()["data"]
    assert started["batch_id"] not in [b["id"] for b in listed]
    assert client_api.get(f"/v1/batches/{started['batch_id']}").status_code == 404


def test_a_model_that_fails_its_test_is_not_offered_until_forced_or_passed(
    staff_post, staff_client, client_api, settings, upload, django_capture_on_commit_callbacks
):
    # given a model the engine cannot load
    settings.BATCH_LOAD_BACKOFF_SECONDS = 0
    broken = register_model("fake-broken", extra_args={"fake_fail_load": True})

    # when it is tested
    started = staff_post(TEST, {"model": "fake-broken"}).json()

    # then the test failed with the load error, and the model is marked so
    result = staff_client.get(f"{TEST}/{started['id']}").json()
    assert result["status"] == "failed"
    assert "failed to load" in result["error"] and "fake-broken" in result["error"]
    broken.refresh_from_db()
    assert broken.test_status == "failed"

    # and clients are not offered it: not listed, not retrievable, refused in a batch
    assert "fake-broken" not in [m["id"] for m in client_api.get("/v1/models").json()["data"]]
    assert client_api.get("/v1/models/fake-broken").status_code == 404
    file = upload(jsonl([request_line(0, model="fake-broken")]))
    with django_capture_on_commit_callbacks(execute=True):
        created = client_api.post(
            "/v1/batches",
            {
                "input_file_id": file["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
            format="json",
        ).json()
    refused = client_api.get(f"/v1/batches/{created['id']}").json()
    assert refused["status"] == "failed"
    assert refused["errors"]["data"][0]["code"] == "model_not_available"
    assert "failed its last test" in refused["errors"]["data"][0]["message"]

    # when an operator forces it, it is offered again despite the failed test
    forced = staff_post("/admin/models/state", {"model": "fake-broken", "forced": True})
    assert forced.status_code == 200 and forced.json()["offered"] is True
    assert "fake-broken" in [m["id"] for m in client_api.get("/v1/models").json()["data"]]
    staff_post("/admin/models/state", {"model": "fake-broken", "forced": False})

    # when the model is repaired and tested again, the passed test offers it
    Model.objects.filter(pk=broken.pk).update(extra_args={})
    again = staff_post(TEST, {"model": "fake-broken"}).json()
    assert staff_client.get(f"{TEST}/{again['id']}").json()["status"] == "passed"
    assert "fake-broken" in [m["id"] for m in client_api.get("/v1/models").json()["data"]]


def test_a_failed_request_fails_the_test_with_its_message(staff_post, staff_client, model):
    started = staff_post(TEST, {"model": FAKE_MODEL, "prompts": ["fine", "boom [[fail]]"]}).json()
    result = staff_client.get(f"{TEST}/{started['id']}").json()
    assert result["status"] == "failed"
    assert "[[fail]]" in result["error"]
    assert result["answers"][0]["answer"] == "echo: fine" and result["answers"][1]["answer"] is None


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "no-such-model"}, 404, "model"),
        ({"model": FAKE_MODEL, "prompts": [""]}, 400, "prompts"),
        ({"model": FAKE_MODEL, "prompts": ["x"] * 21}, 400, "prompts"),
        ({"model": FAKE_MODEL, "max_tokens": 0}, 400, "max_tokens"),
    ],
)
def test_bad_test_requests_are_refused_naming_the_parameter(staff_post, model, body, status, param):
    response = staff_post(TEST, body)
    assert response.status_code == status, response.content
    assert response.json()["error"]["param"].startswith(param)  # "prompts.0": the first prompt
    assert not ModelTest.objects.exists()


def test_a_deactivated_model_cannot_be_tested_and_a_test_under_way_is_not_doubled(
    staff_post, model
):
    ModelTest.objects.create(model=model)  # queued, its batch not yet ended
    assert staff_post(TEST, {"model": FAKE_MODEL}).json()["error"]["code"] == "test_running"
    staff_post("/admin/models/state", {"model": FAKE_MODEL, "active": False})
    assert staff_post(TEST, {"model": FAKE_MODEL}).json()["error"]["code"] == "model_inactive"


def test_finishing_twice_records_once(staff_post, model):
    started = staff_post(TEST, {"model": FAKE_MODEL}).json()
    test = ModelTest.objects.get(pk=started["id"])
    finished_at = test.finished_at
    assert model_tests.finish_test(test.pk).finished_at == finished_at
    assert model_tests.finish_ended_tests() == 0


def test_the_test_status_of_an_unknown_id_is_a_404(staff_client):
    response = staff_client.get(f"{TEST}/12345")
    assert response.status_code == 404 and response.json()["error"]["param"] == "test_id"
