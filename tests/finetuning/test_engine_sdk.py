"""The whole flow with the official openai SDK on the real engine: upload 12 examples, fine-tune
SmolLM2 (1 epoch, a tiny LoRA), watch the events, see ``succeeded``, find the new model in
``/v1/models``, run a batch on it with vLLM, and compare it with its base on the shipped
arithmetic benchmark dataset (a benchmark run started through the staff API, as an operator's
script would: both models get stored figures and the comparison answers).

Run under the engine lock: ``flock /tmp/engine.lock .venv/bin/python -m pytest -m engine …``.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from django.contrib.auth import get_user_model

from batchserver.models import ApiKey
from models_registry import builtin
from models_registry.services import register_model
from tests.cluster import running_cluster
from tests.engine.conftest import SMOLLM2, chat_line

pytestmark = [pytest.mark.engine, pytest.mark.cluster]

TRAINING = [
    {
        "messages": [
            {"role": "user", "content": f"What is the code word number {i}?"},
            {"role": "assistant", "content": f"The code word number {i} is PELICAN."},
        ]
    }
    for i in range(12)
]


@pytest.fixture(scope="module")
def smollm2_folder() -> str:
    return builtin.resolve_path(builtin.BUILTIN_PATH)


def test_the_sdk_fine_tunes_smollm2_and_a_batch_runs_on_the_result(
    transactional_db, tmp_path, smollm2_folder
):
    env = {
        "BATCHSERVER_ENGINE": "vllm",
        "FINETUNE_DIR": str(tmp_path / "ft-jobs"),
        "FINETUNE_MODELS_DIR": str(tmp_path / "ft-models"),
        "BATCH_CHUNK_SIZE": "8",
    }
    with running_cluster(tmp_path, **env) as cluster:
        import openai

        base = register_model(SMOLLM2, builtin.BUILTIN_PATH, **builtin.ENGINE_SETTINGS)
        client = openai.OpenAI(
            base_url=f"{cluster.url}/v1", api_key=ApiKey.issue("ft-e2e")[1], max_retries=0
        )
        # upload, create
        content = "".join(json.dumps(x) + "\n" for x in TRAINING).encode()
        training = client.files.create(file=("train.jsonl", content), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(
            model=SMOLLM2,
            training_file=training.id,
            suffix="pelican",
            seed=3,
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 4}},
            },
        )
        assert job.status == "validating_files"

        # watch events until the job ends
        seen: list[str] = []
        deadline = time.monotonic() + 900
        while job.status not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, (job.status, seen, cluster.diagnostics())
            time.sleep(2)
            job = client.fine_tuning.jobs.retrieve(job.id)
            seen = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=50)]
        assert job.status == "succeeded", (job.error, seen, cluster.diagnostics())
        assert any(m.startswith("Step 3/3: training loss=") for m in seen)
        assert job.trained_tokens and job.trained_tokens > 0
        assert job.fine_tuned_model == f"ft:{SMOLLM2}:ft-e2e:pelican:{job.id[-8:]}"
        checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
        assert [c.step_number for c in checkpoints] == [3]

        # the new model is listed, a version of its base
        assert job.fine_tuned_model in [m.id for m in client.models.list()]
        assert base.children.get().name == job.fine_tuned_model

        # and a batch on it answers, from the merged weights loaded by vLLM
        lines = [
            chat_line(i, f"What is the code word number {i}?", model=job.fine_tuned_model)
            for i in range(2)
        ]
        batch_input = client.files.create(
            file=("in.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode()),
            purpose="batch",
        )
        batch = client.batches.create(
            input_file_id=batch_input.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            assert time.monotonic() < deadline + 600, (batch.status, cluster.diagnostics())
            time.sleep(1)
            batch = client.batches.retrieve(batch.id)
        assert batch.status == "completed", batch
        outputs = [
            json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()
        ]
        assert len(outputs) == 2
        for line in outputs:
            body = line["response"]["body"]
            assert line["response"]["status_code"] == 200
            assert body["model"] == job.fine_tuned_model
            assert body["choices"][0]["message"]["content"].strip()

        # and a benchmark run compares it with its base on a shipped dataset: the new model
        # first (the engine has it loaded), then one swap to the base
        compare_with_base(cluster.url, [job.fine_tuned_model, SMOLLM2], deadline + 1200)


def staff_session(url: str) -> httpx.Client:
    """An operator's browser session: logged in through the admin's login form."""
    get_user_model().objects.create_superuser("ft-operator", password="pw-ft-operator")
    session = httpx.Client(base_url=url, timeout=30)
    session.get("/admin/login/")
    response = session.post(
        "/admin/login/?next=/admin/",
        data={
            "username": "ft-operator",
            "password": "pw-ft-operator",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/admin/",
        },
    )
    assert response.status_code == 302 and "sessionid" in session.cookies, response.text[-500:]
    return session


def compare_with_base(url: str, models: list[str], deadline: float) -> None:
    session = staff_session(url)
    csrf = {"X-CSRFToken": session.cookies["csrftoken"]}
    started = session.post(
        "/v1/benchmarks/runs",
        json={"dataset": "builtin/arithmetic", "models": models, "max_tokens": "8"},
        headers=csrf,
    )
    assert started.status_code == 201, started.text
    run = started.json()
    while run["status"] not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, run
        time.sleep(1)
        run = session.get(f"/v1/benchmarks/runs/{run['id']}").json()
    assert run["status"] == "completed", run

    # both models have stored results: every prompt answered, throughput and quality
    results = {r["model"]: r for r in run["results"]}
    assert list(results) == models
    for result in results.values():
        assert (result["status"], result["completed"], result["errors"]) == ("completed", 20, 0)
        assert result["output_tokens_per_second"] > 0
        assert set(result["quality"]) >= {"exact_match", "contains"}, result["quality"]
        assert all(0 <= v <= 1 for v in result["quality"].values() if v is not None)

    # and the comparison is reachable: the API's matrix and the console page
    matrix = session.get("/v1/benchmarks/compare", params={"runs": run["id"]}).json()
    assert [c["model"] for c in matrix["columns"]] == models
    assert len(matrix["rows"]) == 20
    assert all(cell["answer"] is not None for row in matrix["rows"] for cell in row["cells"])
    page = session.get("/model-comparison", params={"runs": run["id"]})
    assert page.status_code == 200
    assert all(model in page.text for model in models)
