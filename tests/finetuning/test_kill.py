"""kill -9 of the worker during training: the training dies with it, the job resumes from its
last checkpoint on a new worker, and the finished model is registered once, in the base's shape.

Real web and django-q2 worker processes (``tests.cluster``), the openai SDK as the client, real
training of the tiny Llama.
"""

from __future__ import annotations

import json

import psutil
import pytest
from safetensors import safe_open

from batchserver.models import ApiKey
from finetuning.models import FineTuningJob
from finetuning.trainer import checkpoint_step, latest_checkpoint
from models_registry.services import find_active_model, register_model
from tests.cluster import kill_group, running_cluster, start_worker
from tests.finetuning.conftest import TINY, examples
from tests.reliability.conftest import nudge, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.reliability]


def trainers(job_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "finetuning.trainer" in cmdline and job_id in cmdline:
            found.append(proc)
    return found


def shapes(path: str) -> dict[str, tuple[int, ...]]:
    with safe_open(path, "pt") as weights:
        return {key: tuple(weights.get_slice(key).get_shape()) for key in weights.keys()}


def test_a_killed_worker_resumes_training_from_the_checkpoint_and_registers_once(
    transactional_db, tmp_path, tiny_folder
):
    env = {
        "FINETUNE_DIR": str(tmp_path / "ft-jobs"),
        "FINETUNE_MODELS_DIR": str(tmp_path / "ft-models"),
        "FINETUNE_CHECKPOINT_STEPS": "4",
        "FINETUNE_THREADS": "1",
        "BATCH_LEASE_SECONDS": "3",
        "WORKER_HEARTBEAT_SECONDS": "1",
    }
    with running_cluster(tmp_path, **env) as cluster:
        import openai

        base = register_model(TINY, tiny_folder, max_model_len=512)
        client = openai.OpenAI(
            base_url=f"{cluster.url}/v1", api_key=ApiKey.issue("kill")[1], max_retries=2
        )
        content = "".join(json.dumps(e) + "\n" for e in examples(12)).encode()
        training = client.files.create(file=("train.jsonl", content), purpose="fine-tune")
        job_id = client.fine_tuning.jobs.create(
            model=TINY,
            training_file=training.id,
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 12, "batch_size": 2}},
            },
        ).id
        worker = cluster.worker

        def row() -> FineTuningJob:
            return FineTuningJob.objects.get(pk=job_id)

        def diagnostics() -> str:
            return f"{cluster.diagnostics()}\n--- {worker.name} ---\n{worker.log_tail()}"

        # given the job training, past its second checkpoint
        wait_for(
            lambda: row().checkpoints.filter(step_number__gte=8).exists() and row().step % 4 != 0,
            180,
            "a checkpoint, then more steps",
            diagnostics=diagnostics,
        )
        assert trainers(job_id)

        # when the worker's whole process group is SIGKILLed mid-training
        assert kill_group(worker) == []
        recorded = row().checkpoints.order_by("-step_number").first().step_number
        # then its training process (a group of its own) dies with it
        wait_for(lambda: not trainers(job_id), 10, "the training process to die")
        # the newest complete checkpoint on disk: the one recorded, or a later one the trainer
        # wrote before it died whose report the killed worker never read
        on_disk = latest_checkpoint(tmp_path / "ft-jobs" / job_id / "trainer")
        last_checkpoint = checkpoint_step(on_disk)
        assert last_checkpoint >= recorded

        # when a new worker starts, the job resumes from that checkpoint and finishes
        worker = start_worker(cluster.env, tmp_path, "worker-2")
        nudge()
        wait_for(
            lambda: row().status in ("succeeded", "failed", "cancelled"),
            300,
            "the end of the job",
            while_waiting=nudge,
            diagnostics=diagnostics,
        )
        job = client.fine_tuning.jobs.retrieve(job_id)
        events = [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=100)]
        listed = [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job_id)]
        graceful = worker.stop()
        assert not worker.members() and graceful

    assert job.status == "succeeded", job
    assert f"Resuming from the checkpoint at step {last_checkpoint}." in events
    # the checkpoint it resumed from is listed, whichever worker saw it written
    assert last_checkpoint in listed
    # registered once, and its weights have exactly the base model's shapes
    assert base.children.count() == 1
    model = find_active_model(job.fine_tuned_model)
    assert shapes(f"{model.path}/model.safetensors") == shapes(f"{tiny_folder}/model.safetensors")
    # every step's loss once (the steps after the checkpoint were trained again, not twice)
    steps = list(row().events.filter(type="metrics").values_list("step", flat=True))
    assert sorted(steps) == list(range(1, 73))
