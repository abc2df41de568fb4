"""Training waits in the worker's one queue with batches, and never shares the GPU with them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from finetuning.models import FineTuningJob
from jobs.worker import kinds, loop, signals
from jobs.worker.engine.base import ModelSpec
from jobs.worker.engine.host import group_members
from jobs.worker.engine.manager import get_engine
from tests.conftest import FAKE_MODEL
from tests.finetuning.conftest import examples


@pytest.fixture
def hosted_engine(settings):
    """The engine in its own host process, as in production (the fake backend inside)."""
    settings.BATCHSERVER_ENGINE = "fake-hosted"
    engine = get_engine()
    yield engine
    engine.shutdown()


@pytest.fixture
def ran(monkeypatch):
    """What ran, in order, and what the engine looked like while each training slice ran."""
    log: list[tuple[str, dict]] = []
    batch_kind, training = kinds.get("batch"), kinds.get("fine-tuning")
    run_batch, run_training = batch_kind.run, training.run

    def batch_run(unit, work):
        log.append((unit.batch_id, {}))
        return run_batch(unit, work)

    def training_run(unit, work):
        engine = work.engine
        group = engine.backend.pgid if engine.backend is not None else None
        log.append((unit.id, {"loaded": engine.loaded_model, "host": group}))
        return run_training(unit, work)

    monkeypatch.setattr(batch_kind, "run", batch_run)
    monkeypatch.setattr(training, "run", training_run)
    return log


def queued_job(create_job, ft_file, *, priority: int, age: float) -> str:
    job = create_job(training_file=ft_file(examples(12)), hyperparameters={"n_epochs": 1})
    assert job["status"] == "queued"
    FineTuningJob.objects.filter(pk=job["id"]).update(
        priority=priority, created_at=timezone.now() - timedelta(seconds=age)
    )
    return job["id"]


def test_two_jobs_behind_batches_run_by_priority_then_age_with_the_gpu_alone(
    client_api, create_job, ft_file, tiny_base, validated_batch, hosted_engine, ran, settings
):
    settings.BATCH_TASK_SLICE_SECONDS = 600
    # given an old batch that has loaded its model, a newer job, a newer batch, an urgent job
    old_batch = validated_batch(age=300)
    hosted_engine.ensure_loaded(ModelSpec(name=FAKE_MODEL, path="", kind="generate", settings={}))
    host_before = hosted_engine.backend.pgid
    older_job = queued_job(create_job, ft_file, priority=0, age=200)
    new_batch = validated_batch(age=100)
    urgent_job = queued_job(create_job, ft_file, priority=5, age=0)

    # then the queue shows them in claim order
    queue = client_api.get("/v1/queue").json()["data"]
    assert [(e["kind"], e["id"]) for e in queue] == [
        ("fine-tuning", urgent_job),
        ("batch", old_batch.id),
        ("fine-tuning", older_job),
        ("batch", new_batch.id),
    ]

    # when the worker runs everything
    loop.run_work()

    # then they ran in that order
    assert [unit for unit, _ in ran] == [urgent_job, old_batch.id, older_job, new_batch.id]
    # and while each training ran, no engine was loaded and the engine host group was gone
    for unit, seen in ran:
        if unit.startswith("ftjob-"):
            assert seen == {"loaded": None, "host": None}
    assert group_members(host_before) == []
    # and both jobs finished, and the engine serves the batches' model again
    assert set(FineTuningJob.objects.values_list("status", flat=True)) == {"succeeded"}
    assert hosted_engine.loaded_model == FAKE_MODEL


@pytest.fixture
def loads():
    """The models the engine loads, in order (the ``engine_loaded`` signal)."""
    seen: list[str] = []

    def note(sender, model: str, **kwargs) -> None:
        seen.append(model)

    signals.engine_loaded.connect(note, weak=False)
    yield seen
    signals.engine_loaded.disconnect(note)


@pytest.mark.parametrize("load_result", [True, False])
def test_after_a_job_succeeds_the_engine_loads_its_new_model_once(
    create_job, ft_file, tiny_base, hosted_engine, loads, settings, load_result
):
    settings.BATCH_TASK_SLICE_SECONDS = 600
    settings.FINETUNE_LOAD_RESULT = load_result
    # given the engine serving a model, and a job queued
    hosted_engine.ensure_loaded(ModelSpec(name=FAKE_MODEL, path="", kind="generate", settings={}))
    job_id = queued_job(create_job, ft_file, priority=0, age=0)
    loads.clear()

    # when the worker trains it to the end
    loop.run_work()

    # then the one load after the training is the new model (the next requests name it);
    # with FINETUNE_LOAD_RESULT off it is the model loaded before, as it used to be
    job = FineTuningJob.objects.get(pk=job_id)
    assert job.status == "succeeded"
    expected = job.fine_tuned_model if load_result else FAKE_MODEL
    assert loads == [expected]
    assert hosted_engine.loaded_model == expected
