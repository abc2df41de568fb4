"""Real LoRA training (peft + Trainer on a tiny Llama) through the worker runtime.

The worker loop runs inline: it claims the job as exclusive GPU work, trains it in the training
process, registers the merged model and writes the results file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from safetensors import safe_open

from finetuning import process, services
from finetuning.models import FineTuningJob
from jobs.worker import loop
from jobs.worker.engine.host import group_members
from models_registry.services import find_active_model
from tests.finetuning.conftest import TINY, examples, job_row

HYPER = {"n_epochs": 2, "batch_size": 4}


@pytest.fixture
def training(ft_file, tiny_base) -> str:
    return ft_file(examples(12))


def test_a_job_trains_and_its_model_is_registered_as_a_new_version(
    client_api, create_job, training, settings, tiny_base
):
    # given a job of 12 examples, 2 epochs of 3 steps
    job = create_job(run=True, training_file=training, suffix="sums", hyperparameters=HYPER)

    # then the worker trained it to the end
    assert job["status"] == "succeeded", job
    row = job_row(job["id"])
    name = f"ft:{TINY}:test:sums:{job['id'][-8:]}"
    assert job["fine_tuned_model"] == name
    assert job["trained_tokens"] > 0 and job["finished_at"] and row.step == row.total_steps == 6

    # and the model is a new version of its base, listed for clients, in a complete folder
    model = find_active_model(name)
    assert model.parent_id == tiny_base.pk and model.origin == "fine-tuned" and model.version == 2
    assert name in [m["id"] for m in client_api.get("/v1/models").json()["data"]]
    folder = Path(model.path)
    assert folder.parent == Path(settings.FINETUNE_MODELS_DIR)
    assert (folder / "adapter" / "adapter_model.safetensors").exists()
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()
    }
    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        assert not any("lora" in key for key in weights.keys())  # merged, not an adapter
    assert not list(folder.parent.glob(".*partial"))

    # and events carry the loss of every step, newest first
    events = client_api.get(f"/v1/fine_tuning/jobs/{job['id']}/events?limit=100").json()["data"]
    metrics = [e for e in events if e["type"] == "metrics"]
    assert [e["data"]["step"] for e in metrics] == [6, 5, 4, 3, 2, 1]
    assert all(e["data"]["train_loss"] > 0 for e in metrics)
    assert events[0]["message"] == "The job has successfully completed."

    # and checkpoints (each epoch's end) are listed with their model names
    checkpoints = client_api.get(f"/v1/fine_tuning/jobs/{job['id']}/checkpoints").json()["data"]
    assert [c["step_number"] for c in checkpoints] == [6, 3]
    assert checkpoints[0]["fine_tuned_model_checkpoint"] == f"{name}:ckpt-step-6"
    assert checkpoints[0]["metrics"]["train_loss"] > 0

    # and the results file is a CSV of step and loss, like OpenAI's
    results = client_api.get(f"/v1/files/{job['result_files'][0]}").json()
    assert results["purpose"] == "fine-tune-results"
    content = b"".join(client_api.get(f"/v1/files/{results['id']}/content").streaming_content)
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(float(r["train_loss"]) > 0 for r in rows)


def test_short_slices_resume_from_checkpoints_and_register_once(
    create_job, training, settings, tiny_base
):
    # given slices that end after every step and a checkpoint every step
    settings.FINETUNE_SLICE_SECONDS = 0
    settings.FINETUNE_CHECKPOINT_STEPS = 1

    # when the job runs, one slice per task, each continuing the last
    job = create_job(
        run=True, training_file=training, hyperparameters={"n_epochs": 1, "batch_size": 4}
    )

    # then it took several slices, each resuming from the checkpoint before it
    row = job_row(job["id"])
    assert job["status"] == "succeeded" and row.slices > 2
    resumed = row.events.filter(message__startswith="Resuming from the checkpoint")
    assert resumed.count() == row.slices - 1
    # and every step's metrics are there once, and the model is registered once
    steps = list(row.events.filter(type="metrics").values_list("step", flat=True))
    assert sorted(steps) == [1, 2, 3]
    assert tiny_base.children.count() == 1


def test_a_checkpoint_the_worker_never_recorded_is_recorded_when_training_resumes_from_it(
    create_job, training, settings, tiny_base, monkeypatch
):
    # given slices of one step, a checkpoint every step, and a worker that misses the first
    # checkpoint's report (as one killed after the trainer wrote it, before it read the report)
    settings.FINETUNE_SLICE_SECONDS = 0
    settings.FINETUNE_CHECKPOINT_STEPS = 1
    original = services.record_checkpoint
    missed = []

    def miss_the_first(job, report):
        if not missed:
            missed.append(report["step"])
            return
        original(job, report)

    monkeypatch.setattr(services, "record_checkpoint", miss_the_first)

    # when the job runs
    job = create_job(
        run=True, training_file=training, hyperparameters={"n_epochs": 1, "batch_size": 4}
    )

    # then the next slice, resuming from that checkpoint, recorded it, once, with its own loss
    row = job_row(job["id"])
    assert job["status"] == "succeeded" and missed == [1]
    checkpoint = row.checkpoints.get(step_number=1)
    assert checkpoint.metrics["train_loss"] > 0
    assert row.events.filter(message="Checkpoint saved at step 1.").count() == 1
    assert row.events.filter(message="Resuming from the checkpoint at step 1.").count() == 1


def test_cancel_while_training_stops_it_and_registers_nothing(
    create_job, training, tiny_base, monkeypatch
):
    # given a cancel that arrives while the first step is reported
    original = services.record_step

    def cancel_at_first_step(job, report):
        original(job, report)
        if report["step"] == 1:
            services.request_cancel(FineTuningJob.objects.get(pk=job.pk))

    monkeypatch.setattr(services, "record_step", cancel_at_first_step)
    killed = []
    kill = process.TrainingProcess.kill
    monkeypatch.setattr(
        process.TrainingProcess, "kill", lambda self: (killed.append(self.pgid), kill(self))
    )

    # when the job runs
    job = create_job(run=True, training_file=training, hyperparameters={"n_epochs": 20})

    # then it is cancelled mid-training, no process of its training is left, nothing registered
    row = job_row(job["id"])
    assert job["status"] == "cancelled" and 0 < row.step < row.total_steps
    assert len(killed) == 1 and group_members(killed[0]) == []
    assert tiny_base.children.count() == 0
    assert not services.output_folder(row).exists()


def test_pause_while_training_checkpoints_and_resume_finishes(
    client_api, create_job, training, tiny_base, monkeypatch, django_capture_on_commit_callbacks
):
    original = services.record_step

    def pause_at_second_step(job, report):
        original(job, report)
        if report["step"] == 2:
            services.request_pause(FineTuningJob.objects.get(pk=job.pk))

    monkeypatch.setattr(services, "record_step", pause_at_second_step)
    job = create_job(run=True, training_file=training, hyperparameters={"n_epochs": 4})

    row = job_row(job["id"])
    assert job["status"] == "paused" and 2 <= row.step < row.total_steps
    paused_at = row.step
    assert row.checkpoints.filter(step_number=paused_at).exists()

    monkeypatch.setattr(services, "record_step", original)
    with django_capture_on_commit_callbacks(execute=True):
        assert client_api.post(f"/v1/fine_tuning/jobs/{job['id']}/resume").status_code == 200
    row.refresh_from_db()
    assert row.status == "succeeded"
    messages = list(row.events.values_list("message", flat=True))
    assert f"Resuming from the checkpoint at step {paused_at}." in messages
    assert tiny_base.children.count() == 1


def test_a_base_model_gone_before_training_fails_the_job(create_job, training, tiny_base):
    job = create_job(run=False, training_file=training)
    tiny_base.is_active = False
    tiny_base.save()
    loop.run_work()
    row = job_row(job["id"])
    assert row.status == "failed"
    assert row.error["code"] == "training_setup_failed"
    assert "no longer registered" in row.error["message"]


def test_the_trainer_targets_no_tied_embedding(create_job, training, tiny_base):
    job = create_job(run=True, training_file=training, hyperparameters=HYPER)
    folder = Path(find_active_model(job["fine_tuned_model"]).path)
    adapter = json.loads((folder / "adapter" / "adapter_config.json").read_text())
    targets = set(adapter["target_modules"])
    assert targets and not targets & {"lm_head", "embed_tokens"}
    with safe_open(str(folder / "adapter" / "adapter_model.safetensors"), "pt") as weights:
        assert not any("lm_head" in k or "embed_tokens" in k for k in weights.keys())


def test_a_checkpoint_is_registered_as_a_model_on_request(
    client_api, create_job, training, tiny_base, django_capture_on_commit_callbacks
):
    job = create_job(
        run=True, training_file=training, hyperparameters={"n_epochs": 1, "batch_size": 4}
    )
    checkpoint = client_api.get(f"/v1/fine_tuning/jobs/{job['id']}/checkpoints").json()["data"][0]
    url = f"/v1/fine_tuning/jobs/{job['id']}/checkpoints/{checkpoint['id']}/register"

    with django_capture_on_commit_callbacks(execute=True):
        assert client_api.post(url).status_code == 200

    name = f"{job['fine_tuned_model']}:ckpt-step-3"
    assert checkpoint["fine_tuned_model_checkpoint"] == name
    model = find_active_model(name)
    assert model is not None and model.parent_id == tiny_base.pk
    assert (Path(model.path) / "model.safetensors").exists()
    assert name in [m["id"] for m in client_api.get("/v1/models").json()["data"]]
    again = client_api.post(url)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_registered"
