"""The whole flow with the official openai SDK on the real engine: upload 12 examples, fine-tune
SmolLM2 (1 epoch, a tiny LoRA), watch the events, see ``succeeded``, find the new model in
``/v1/models``, and run a batch on it with vLLM.

Run under the engine lock: ``flock /tmp/engine.lock .venv/bin/python -m pytest -m engine …``.
"""

from __future__ import annotations

import json
import time

import pytest

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
