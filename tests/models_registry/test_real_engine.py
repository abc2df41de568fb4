# ruff: noqa: F811
"""Model tests on the real vLLM engine with the embedded SmolLM2 (marked ``engine``).

Run under the shared lock: ``flock /tmp/engine.lock .venv/bin/python -m pytest -m engine
tests/models_registry``. The test batch goes through the ordinary pipeline inline; the worker's
engine loads the model for it (the engine is stopped first, so the load is this test's).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest

from jobs.models import Batch
from jobs.worker.engine.manager import get_engine
from models_registry import builtin, model_tests
from models_registry.models import Model
from tests.engine.conftest import (  # noqa: F401
    SMOLLM2,
    chat_line,
    real_engine,
    smollm2,
    smollm2_folder,
)
from tests.models_registry.conftest import copy_model_folder

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module", autouse=True)
def _stop_engine_after_module():
    yield
    get_engine().shutdown()


def test_a_model_test_on_the_real_engine_records_load_memory_speed_and_answers(
    real_engine, smollm2, django_capture_on_commit_callbacks
):
    # given no model loaded yet
    real_engine.shutdown()

    # when the default model is tested with two short prompts
    with django_capture_on_commit_callbacks(execute=True):
        test = model_tests.start_test(
            smollm2,
            prompts=["What is 2 + 3? Answer with the number only.", "Say hello."],
            max_tokens=16,
        )
    test.refresh_from_db()

    # then it passed with real answers and the figures of this load
    assert test.status == "passed", test.as_dict()
    assert all(a["answer"] and a["error"] is None for a in test.answers)
    assert "5" in test.answers[0]["answer"]
    assert test.loaded_for_test and test.load_seconds > 1
    # the peak of the engine's process group (host, engine core, worker) over the load and the
    # prompts: at least what it held once ready, and within what one small model can take
    assert 2**30 < test.ready_memory_bytes <= test.peak_memory_bytes < 16 * 2**30
    assert "sampled every 100 ms" in test.peak_memory_measure
    assert "over the load and this test's batch" in test.peak_memory_measure
    assert test.output_tokens > 2 and test.output_tokens_per_second > 1
    assert Model.objects.get(name=SMOLLM2).test_status == "passed"
    print("model test figures:", {k: v for k, v in test.as_dict().items() if k != "answers"})


def vllm_processes_since(started: float) -> list[int]:
    """Pids of vLLM's engine processes (they name themselves ``VLLM::…``) started since then."""
    return [
        proc.pid
        for proc in psutil.process_iter(["name", "create_time"])
        if (proc.info["name"] or "").startswith("VLLM") and proc.info["create_time"] >= started
    ]


def cut_weights(folder: Path) -> None:
    """Cut the weights file short after its header and 1 MiB of tensors (an interrupted copy):
    the header still names every tensor, most of their bytes are missing."""
    weights = next(folder.glob("*.safetensors"))
    source = weights.resolve()
    weights.unlink()  # a symlink to the shared folder's file, which stays intact
    with open(source, "rb") as full:
        head = full.read(8)
        header = full.read(int.from_bytes(head, "little"))
        tensors = full.read(2**20)
    weights.write_bytes(head + header + tensors)


def test_a_folder_vllm_cannot_load_fails_its_test_and_the_engine_recovers(
    real_engine,
    smollm2_folder,
    tmp_path,
    staff_post,
    staff_client,
    client_api,
    create_batch,
    monkeypatch,
    settings,
):
    # given a copy of the default model whose weights were cut short: the registry's file
    # checks (config, tokenizer, weights present, architecture) pass, vLLM cannot load it
    folder = copy_model_folder(Path(smollm2_folder), tmp_path / "cut")
    cut_weights(folder)
    added = staff_post(
        "/admin/models/add",
        {"source_kind": "folder", "source": str(folder), "name": "smollm2-cut"}
        | builtin.ENGINE_SETTINGS,
    )
    assert added.status_code == 201, added.content
    # one load attempt per batch keeps this to one failed load (the retries with back-off are
    # tested on the fake engine)
    monkeypatch.setattr(Batch, "MAX_LOAD_ATTEMPTS", 1)
    settings.BATCH_LOAD_BACKOFF_SECONDS = 0
    started = time.time()

    # when it is tested on the worker's engine
    started = staff_post(
        "/admin/models/test", {"model": "smollm2-cut", "prompts": ["Say hello."], "max_tokens": 8}
    ).json()
    result = staff_client.get(f"/admin/models/test/{started['id']}").json()

    # then the test failed with the load error, and nothing of the failed engine is left
    assert result["status"] == "failed", result
    assert "failed to load" in result["error"] and "smollm2-cut" in result["error"]
    # with the root cause, which vLLM's own message leaves in its output ("see above")
    assert "cause, from the engine's output" in result["error"]
    assert "metadata" in result["error"] or "Safetensor" in result["error"], result["error"]
    assert result["answers"][0]["answer"] is None
    assert vllm_processes_since(started) == []

    # and the model is marked failed: clients are not offered it until an operator forces it
    assert Model.objects.get(name="smollm2-cut").test_status == "failed"
    offered = [m["id"] for m in client_api.get("/v1/models").json()["data"]]
    assert "smollm2-cut" not in offered and SMOLLM2 in offered
    staff_post("/admin/models/state", {"model": "smollm2-cut", "forced": True})
    assert "smollm2-cut" in [m["id"] for m in client_api.get("/v1/models").json()["data"]]
    staff_post("/admin/models/state", {"model": "smollm2-cut", "forced": False})
    assert "smollm2-cut" not in [m["id"] for m in client_api.get("/v1/models").json()["data"]]

    # and the worker's engine recovers: the next batch, on the default model, is answered
    batch = create_batch([chat_line(0, "What is 2 + 3? Answer with the number only.")])
    assert batch["status"] == "completed", batch
    assert batch["request_counts"] == {"total": 1, "completed": 1, "failed": 0}
    output = client_api.get(f"/v1/files/{batch['output_file_id']}/content")
    line = json.loads(b"".join(output.streaming_content))
    assert "5" in line["response"]["body"]["choices"][0]["message"]["content"]
    assert get_engine().loaded_model == SMOLLM2
