"""Operations API: queue order, pause/resume, priority, dry run, worker status, restart, history."""

from __future__ import annotations

import sys
import types
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from jobs import runner, tasks
from jobs.models import Batch, Worker
from jobs.worker import gpu
from jobs.worker.control import RESTART_KEY, restart_requests
from jobs.worker.engine.manager import get_engine
from jobs.worker.heartbeat import worker_id
from models_registry import builtin
from models_registry.models import Model
from models_registry.services import record_throughput, register_model
from tests.conftest import FAKE_MODEL, csrf_token, jsonl, request_line

# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def worker_with(db):
    """A live worker row that has ``model`` loaded."""

    def _worker(model_name, worker_id="gpu-host:1", **fields):
        return Worker.objects.create(
            worker_id=worker_id,
            hostname="gpu-host",
            pid=1,
            loaded_model=model_name,
            last_heartbeat=timezone.now(),
            **fields,
        )

    return _worker


def queue_ids(client):
    response = client.get("/v1/queue")
    assert response.status_code == 200, response.content
    return [(e["position"], e["id"]) for e in response.json()["data"]]


# --- the queue ----------------------------------------------------------------------------------


def test_queue_is_in_the_workers_order_priority_then_loaded_model_then_age(
    client_api, validated_batch, worker_with
):
    # given a worker with FAKE_MODEL loaded, an old batch on another model, a newer batch on
    # the loaded model, and the newest batch with a higher priority
    worker_with(FAKE_MODEL)
    oldest = validated_batch(model_name="other-model", age=300)
    loaded = validated_batch(model_name=FAKE_MODEL, age=100)
    urgent = validated_batch(model_name="other-model", priority=5, age=0)

    # when the client reads the queue, then it is priority, then loaded model, then age
    assert queue_ids(client_api) == [(1, urgent.id), (2, loaded.id), (3, oldest.id)]

    # and it is the order in which the worker really claims the chunks
    claimed = []
    for _ in range(3):
        chunk = runner.claim_chunk("w1", FAKE_MODEL)
        claimed.append(chunk.batch_id)
        chunk.batch.chunks.update(status="done")
    assert claimed == [urgent.id, loaded.id, oldest.id]


def test_queue_entry_shape_progress_and_eta(client_api, validated_batch):
    batch = validated_batch(lines=4)
    Batch.objects.filter(pk=batch.pk).update(request_completed=1, output_tokens=50)
    Model.objects.filter(name=FAKE_MODEL).update(measured_output_tokens_per_second=10.0)

    entry = client_api.get("/v1/queue").json()["data"][0]

    assert entry["id"] == batch.id and entry["model"] == FAKE_MODEL
    assert entry["progress"] == {"done": 1, "total": 4, "percent": 25.0}
    assert (entry["status"], entry["paused"], entry["priority"]) == ("in_progress", False, 0)
    # 3 requests left at the batch's own 50 tokens a request, at 10 tokens/s
    assert entry["remaining_seconds"] == 15.0 and entry["eta_seconds"] == 15.0


def test_queue_positions_are_global_but_a_key_sees_only_its_own(
    client_api, other_client, other_key, validated_batch
):
    theirs = validated_batch(priority=9, key=other_key[0])
    mine = validated_batch()

    assert queue_ids(client_api) == [(2, mine.id)]
    assert queue_ids(other_client) == [(1, theirs.id)]
    assert client_api.get("/v1/queue").json()["total_active"] == 2


# --- pause, resume, priority --------------------------------------------------------------------


def test_pause_stops_claims_and_resume_runs_the_batch(
    client_api, validated_batch, django_capture_on_commit_callbacks
):
    # given a queued batch that is paused
    batch = validated_batch()
    response = client_api.post(f"/v1/batches/{batch.id}/pause")
    assert response.status_code == 200 and response.json()["paused"] is True

    # then the worker claims nothing of it, and it sits at the end of the queue
    assert runner.claim_chunk("w1", None) is None
    assert tasks.run_work() == 0
    entry = client_api.get("/v1/queue").json()["data"][0]
    assert entry["paused"] is True and entry["eta_seconds"] is None

    # when it is resumed, the worker is woken and finishes it
    with django_capture_on_commit_callbacks(execute=True):
        response = client_api.post(f"/v1/batches/{batch.id}/resume")
    assert response.status_code == 200 and response.json()["paused"] is False
    body = client_api.get(f"/v1/batches/{batch.id}").json()
    assert body["status"] == "completed" and body["request_counts"]["completed"] == 2


def test_a_paused_batchs_running_chunk_finishes(client_api, validated_batch):
    batch = validated_batch()
    chunk = runner.claim_chunk("w1", None)
    client_api.post(f"/v1/batches/{batch.id}/pause")

    written, _ = runner.run_chunk(chunk)

    assert written == 2
    batch.refresh_from_db()
    assert batch.request_completed == 2 and batch.paused


def test_pause_of_an_ended_batch_is_409(client_api, create_batch):
    batch = create_batch([request_line(1)])
    for action in ("pause", "resume"):
        response = client_api.post(f"/v1/batches/{batch['id']}/{action}")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "batch_not_schedulable"
    response = client_api.post(
        f"/v1/batches/{batch['id']}/priority", {"priority": 3}, format="json"
    )
    assert response.status_code == 409


def test_priority_change_reorders_the_queue(client_api, validated_batch):
    first, second = validated_batch(age=100), validated_batch(age=0)
    assert [i for _, i in queue_ids(client_api)] == [first.id, second.id]

    response = client_api.post(f"/v1/batches/{second.id}/priority", {"priority": 10}, format="json")

    assert response.status_code == 200 and response.json()["priority"] == 10
    assert [i for _, i in queue_ids(client_api)] == [second.id, first.id]
    assert runner.claim_chunk("w1", None).batch_id == second.id


def test_priority_out_of_range_or_another_keys_batch(client_api, other_client, validated_batch):
    batch = validated_batch()
    response = client_api.post(f"/v1/batches/{batch.id}/priority", {"priority": 101}, format="json")
    assert response.status_code == 400 and response.json()["error"]["param"] == "priority"
    response = other_client.post(f"/v1/batches/{batch.id}/pause")
    assert response.status_code == 404


@pytest.mark.parametrize(("value", "expected"), [("7", 7), (" -3 ", -3), ("high", 0)])
def test_priority_from_metadata(create_batch, value, expected):
    batch = create_batch([request_line(1)], metadata={"priority": value})
    assert batch["priority"] == expected


def test_priority_parameter_wins_and_metadata_out_of_range_is_400(client_api, create_batch, upload):
    assert create_batch([request_line(1)], metadata={"priority": "7"}, priority=2)["priority"] == 2
    file = upload(jsonl([request_line(1)]))
    response = client_api.post(
        "/v1/batches",
        {
            "input_file_id": file["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "metadata": {"priority": "500"},
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "metadata.priority"


# --- dry run ------------------------------------------------------------------------------------


def known_file() -> list:
    """Three valid chat lines and three broken ones, with known figures."""
    short = request_line(1, content="abcd")  # 1 token estimated, 10 output tokens
    short["body"]["max_tokens"] = 10
    return [
        request_line(0, content="abcdefghij"),  # 10 characters: 3 tokens estimated
        short,
        "{not json",
        request_line(3, url="/v1/completions"),
        request_line(0, content="again"),  # duplicate custom_id
        request_line(5, content="x" * 41),  # 11 tokens
    ]


def dry_run(client, file_id, endpoint="/v1/chat/completions"):
    response = client.post(
        "/v1/batches/dry_run", {"input_file_id": file_id, "endpoint": endpoint}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_dry_run_figures_on_a_known_file(client_api, upload, model):
    file = upload(jsonl(known_file()))

    result = dry_run(client_api, file["id"])

    assert (result["lines"], result["valid_lines"], result["invalid_lines"]) == (6, 3, 3)
    assert result["valid"] is False
    assert [(e["code"], e["line"]) for e in result["errors"]] == [
        ("invalid_json_line", 3),
        ("invalid_url", 4),
        ("duplicate_custom_id", 5),
    ]
    assert result["models"] == [FAKE_MODEL]
    assert result["prompt_tokens"] == 3 + 1 + 11
    assert result["estimated_output_tokens"] == 256 + 10 + 256
    assert result["token_count_method"] == "estimate"
    assert "4 characters" in result["token_count_note"]
    assert result["estimated_seconds"] is None  # the model's throughput was never measured


def test_dry_run_errors_are_those_a_real_batch_fails_with(client_api, upload, create_batch):
    lines = known_file()
    result = dry_run(client_api, upload(jsonl(lines))["id"])

    failed = create_batch(lines)

    assert failed["status"] == "failed"
    assert failed["errors"]["data"] == result["errors"]
    assert not Batch.objects.filter(status="validating").exists()  # the dry run queued nothing


def test_dry_run_estimates_seconds_from_measured_throughput(client_api, upload, model):
    Model.objects.filter(name=FAKE_MODEL).update(measured_output_tokens_per_second=50.0)
    line = request_line(1)
    line["body"]["max_tokens"] = 100
    result = dry_run(client_api, upload(jsonl([line, request_line(2)]))["id"])
    assert result["valid"] is True and result["errors"] == []
    assert result["estimated_output_tokens"] == 356
    assert result["estimated_seconds"] == 7.1
    assert result["by_model"][FAKE_MODEL]["measured_output_tokens_per_second"] == 50.0


def test_dry_run_of_a_missing_or_foreign_file_is_404(client_api, other_client, upload):
    file = upload(jsonl([request_line(1)]))
    response = other_client.post(
        "/v1/batches/dry_run",
        {"input_file_id": file["id"], "endpoint": "/v1/chat/completions"},
        format="json",
    )
    assert response.status_code == 404
    response = client_api.post(
        "/v1/batches/dry_run", {"input_file_id": file["id"], "endpoint": "/v1/x"}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "endpoint"


@pytest.mark.engine
def test_dry_run_counts_smollm2_tokens_with_its_tokenizer(client_api, upload, db):
    # given the converted SmolLM2 folder (converted once per machine) and its registry entry
    builtin.resolve_path(builtin.BUILTIN_PATH)
    register_model(builtin.DEFAULT_NAME, builtin.BUILTIN_PATH, **builtin.ENGINE_SETTINGS)
    lines = [request_line(i, model=builtin.DEFAULT_NAME, content="Hello there") for i in range(2)]

    result = dry_run(client_api, upload(jsonl(lines))["id"])

    # then each line is the chat template's 32 tokens (system prompt, user turn, assistant cue)
    assert result["token_count_method"] == "tokenizer"
    assert result["prompt_tokens"] == 64


# --- throughput -----------------------------------------------------------------------------------


def test_the_worker_measures_model_throughput(create_batch, settings):
    # one request a chunk: the chunk that loads the model is not measured, the others are
    settings.BATCH_CHUNK_SIZE = 1
    get_engine().shutdown()
    create_batch([request_line(i) for i in range(3)])
    measured = Model.objects.get(name=FAKE_MODEL).measured_output_tokens_per_second
    assert measured and measured > 0


def test_throughput_is_a_moving_average(model):
    record_throughput(FAKE_MODEL, 100, 1.0)
    record_throughput(FAKE_MODEL, 200, 1.0)
    model.refresh_from_db()
    assert model.measured_output_tokens_per_second == pytest.approx(0.7 * 100 + 0.3 * 200)


# --- workers ------------------------------------------------------------------------------------


def test_worker_status(client_api, worker_with, validated_batch):
    batch = validated_batch()
    gpu_figures = {"devices": [{"index": 0, "memory_used_bytes": 5, "memory_total_bytes": 10}]}
    worker_with(
        FAKE_MODEL,
        state="running",
        current_batch_id=batch.id,
        current_chunk=0,
        recent_output_tokens_per_second=42.5,
        gpu=gpu_figures,
    )
    Worker.objects.create(
        worker_id="cpu-host:2",
        hostname="cpu-host",
        pid=2,
        state="stopped",
        last_heartbeat=timezone.now() - timedelta(minutes=5),
    )

    data = client_api.get("/v1/worker/status").json()["data"]

    running, stopped = data
    assert running["alive"] is True and stopped["alive"] is False
    assert (running["state"], running["loaded_model"]) == ("running", FAKE_MODEL)
    assert (running["current_batch_id"], running["current_chunk"]) == (batch.id, 0)
    assert running["recent_output_tokens_per_second"] == 42.5
    assert running["gpu"] == gpu_figures
    assert "gpu" not in stopped  # absent, not an error, without a GPU
    assert stopped["seconds_since_heartbeat"] >= 300


def test_worker_status_hides_other_keys_batch_ids(other_client, worker_with, validated_batch):
    batch = validated_batch()
    worker_with(FAKE_MODEL, state="running", current_batch_id=batch.id, current_chunk=0)
    entry = other_client.get("/v1/worker/status").json()["data"][0]
    assert entry["current_batch_id"] is None and entry["state"] == "running"


def fake_pynvml() -> types.ModuleType:
    module = types.ModuleType("pynvml")
    module.NVML_TEMPERATURE_GPU = 0
    module.nvmlInit = lambda: None
    module.nvmlDeviceGetCount = lambda: 1
    module.nvmlDeviceGetHandleByIndex = lambda i: f"handle-{i}"
    module.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=2**30, total=2**34)
    module.nvmlDeviceGetName = lambda h: b"Fake GPU"
    module.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=87)
    module.nvmlDeviceGetTemperature = lambda h, kind: 64
    return module


@pytest.fixture
def fresh_nvml(monkeypatch):
    monkeypatch.setattr(gpu, "_nvml", None)
    yield
    gpu._nvml = None


def test_heartbeat_fills_gpu_figures_from_nvml(fresh_nvml, monkeypatch, db):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    from jobs.worker.heartbeat import Heartbeat

    Heartbeat().beat()

    device = Worker.objects.get().gpu["devices"][0]
    assert device == {
        "index": 0,
        "name": "Fake GPU",
        "memory_used_bytes": 2**30,
        "memory_total_bytes": 2**34,
        "utilization_percent": 87,
        "temperature_celsius": 64,
    }


def test_without_nvml_the_heartbeat_reports_no_gpu(fresh_nvml, monkeypatch, db):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    from jobs.worker.heartbeat import Heartbeat

    Heartbeat().beat()
    assert Worker.objects.get().gpu is None


def test_restart_worker_needs_staff_and_csrf(staff_client, worker_with, db):
    worker_with(FAKE_MODEL)
    assert staff_client.post("/workers/restart", {"worker_id": "gpu-host:1"}).status_code == 403
    anonymous = Client()
    assert anonymous.post("/workers/restart").status_code == 302  # to the login page

    form = {"worker_id": "gpu-host:1", "csrfmiddlewaretoken": csrf_token(staff_client)}
    response = staff_client.post("/workers/restart", form, follow=True)

    assert response.status_code == 200
    assert "Engine restart requested for gpu-host:1." in response.content.decode()
    assert restart_requests(["gpu-host:1"])


def test_worker_honours_a_restart_between_chunks(
    staff_client, create_batch, client_api, monkeypatch
):
    # given a worker that has run a batch and keeps its engine loaded
    create_batch([request_line(1)])
    engine = get_engine()
    assert engine.loaded_model == FAKE_MODEL
    shutdowns = []
    monkeypatch.setattr(engine, "shutdown", lambda: shutdowns.append(engine.loaded_model))

    # when an operator asks every live worker (this process) to restart
    form = {"csrfmiddlewaretoken": csrf_token(staff_client)}
    response = staff_client.post("/workers/restart", form, follow=True)
    assert worker_id() in response.content.decode()
    entry = client_api.get("/v1/worker/status").json()["data"][0]
    assert entry["restart_requested_at"] is not None

    # then the next task shuts the engine down before its chunk, once, and the batch completes
    batch = create_batch([request_line(2)])
    assert shutdowns == [FAKE_MODEL]
    assert batch["status"] == "completed"
    assert cache.get(RESTART_KEY.format(worker_id())) is None


# --- history ------------------------------------------------------------------------------------


@pytest.fixture
def history(create_batch, validated_batch):
    """Three completed batches (one with a failed line), one failed, one in progress."""
    done = [create_batch([request_line(1), request_line(2)]) for _ in range(2)]
    done.append(create_batch([request_line(1), request_line(2, content="[[fail]]")]))
    failed = create_batch(["{bad"])
    running = validated_batch()
    for i, batch_id in enumerate([*(b["id"] for b in done), failed["id"], running.id]):
        Batch.objects.filter(pk=batch_id).update(
            created_at=datetime(2026, 1, 1 + i, tzinfo=UTC)  # one a day, from 1 January
        )
    return {"done": [b["id"] for b in done], "failed": failed["id"], "running": running.id}


def history_of(client, **params):
    response = client.get("/v1/jobs/history", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_history_entries_newest_first_with_figures(client_api, history):
    body = history_of(client_api)
    ids = [e["batch_id"] for e in body["data"]]
    assert ids == [history["running"], history["failed"], *reversed(history["done"])]
    assert body["total"] == 5 and body["has_more"] is False

    with_failure = body["data"][2]
    assert with_failure["status"] == "completed" and with_failure["has_errors"] is True
    assert with_failure["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    assert with_failure["duration_seconds"] is not None and with_failure["webhook"] is False
    assert (
        with_failure["total_tokens"] == with_failure["input_tokens"] + with_failure["output_tokens"]
    )
    assert with_failure["completed_at"] is not None
    running = body["data"][0]
    assert running["duration_seconds"] is None and running["requests_per_second"] is None
    assert body["data"][1]["has_errors"] is True and body["data"][1]["failed_at"] is not None
    assert body["data"][3]["has_errors"] is False


def test_history_filters(client_api, history):
    def ids(**params):
        return {e["batch_id"] for e in history_of(client_api, **params)["data"]}

    assert ids(status="completed") == set(history["done"])
    assert ids(status="failed,in_progress") == {history["failed"], history["running"]}
    assert ids(model=FAKE_MODEL) == {*history["done"], history["running"]}
    jan_3 = int(datetime(2026, 1, 3, tzinfo=UTC).timestamp())
    assert ids(created_after=jan_3) == {history["done"][2], history["failed"], history["running"]}
    assert ids(created_before="2026-01-03T00:00:00Z") == set(history["done"][:2])
    assert ids(created_after="2026-01-02", created_before=str(jan_3)) == {history["done"][1]}


def test_history_pagination(client_api, history):
    first = history_of(client_api, limit=2)
    second = history_of(client_api, limit=2, offset=2)
    last = history_of(client_api, limit=2, offset=4)
    pages = [first, second, last]
    assert [len(p["data"]) for p in pages] == [2, 2, 1]
    assert [p["has_more"] for p in pages] == [True, True, False]
    every = [e["batch_id"] for p in pages for e in p["data"]]
    assert len(set(every)) == 5 and first["total"] == 5


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"offset": -1}, "offset"),
        ({"status": "done"}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
    ],
)
def test_history_rejects_bad_parameters(client_api, db, params, param):
    response = client_api.get("/v1/jobs/history", params)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_history_is_scoped_to_the_key(other_client, history):
    assert history and history_of(other_client)["data"] == []
