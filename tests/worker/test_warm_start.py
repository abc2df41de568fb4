"""Warm start: a freshly spawned worker loads its engine before work arrives.

The model it picks (the work waiting first, else what this host served last, else the newest
batch's, else the default), the first task waiting for that load instead of starting a second
engine, a worker stopping during the load, and a real qcluster reporting the model loaded
before any batch exists.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.utils import timezone

from jobs.models import Worker
from jobs.runner import model_spec, warm_model_name
from jobs.worker import warm
from jobs.worker.engine import manager
from jobs.worker.engine.base import EngineRequest, ModelSpec
from jobs.worker.engine.fake import FakeBackend
from models_registry.services import register_model
from tests.cluster import running_cluster
from tests.conftest import FAKE_MODEL


def test_warm_model_is_the_waiting_work_then_the_last_served_then_the_newest_then_default(
    validated_batch, settings
):
    settings.WORKER_DEFAULT_MODEL = "the-default"
    host_worker = "gpu-host-1:123"
    # nothing anywhere: the default
    assert warm_model_name(host_worker) == "the-default"

    # a worker of this host had another model loaded; another host's does not count
    now = timezone.now()
    Worker.objects.create(
        worker_id="gpu-host-1:99",
        hostname="gpu-host-1",
        pid=99,
        last_heartbeat=now,
        loaded_model="served-here",
    )
    Worker.objects.create(
        worker_id="gpu-host-2:5",
        hostname="gpu-host-2",
        pid=5,
        last_heartbeat=now,
        loaded_model="served-elsewhere",
    )
    assert warm_model_name(host_worker) == "served-here"

    # work waiting wins over both
    validated_batch(2, model_name="other-model")
    assert warm_model_name(host_worker) == "other-model"

    # an explicit setting wins over everything
    settings.WORKER_WARM_MODEL = FAKE_MODEL
    assert warm_model_name(host_worker) == FAKE_MODEL


class SlowLoad(FakeBackend):
    """A fake backend whose load waits for ``gate``; counts loads and shutdowns."""

    loads = 0
    shutdowns = 0
    gate = threading.Event()

    def load(self, spec: ModelSpec) -> None:
        type(self).loads += 1
        type(self).gate.wait(30)
        super().load(spec)

    def shutdown(self) -> None:
        type(self).shutdowns += 1
        type(self).gate.set()  # a stop during the load ends the load
        super().shutdown()


class StubHeartbeat:
    worker_id = "test-host:1"

    def __init__(self) -> None:
        self.events: list[tuple[str, str | None]] = []

    def loading(self, model: str) -> None:
        self.events.append(("loading", model))

    def loaded(self, model: str | None) -> None:
        self.events.append(("loaded", model))


@pytest.fixture
def slow_engine(monkeypatch, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    SlowLoad.loads = SlowLoad.shutdowns = 0
    SlowLoad.gate = threading.Event()
    engine = manager.EngineManager("fake")
    heartbeat = StubHeartbeat()
    monkeypatch.setattr(manager, "make_backend", lambda kind: SlowLoad())
    monkeypatch.setattr(warm, "get_engine", lambda: engine)
    monkeypatch.setattr(warm, "get_heartbeat", lambda: heartbeat)
    yield engine, heartbeat
    SlowLoad.gate.set()
    engine.shutdown(quiet=True)


def test_the_first_task_waits_for_the_warm_load_instead_of_starting_another_engine(
    transactional_db, slow_engine, settings
):
    engine, heartbeat = slow_engine
    spec = model_spec(register_model(FAKE_MODEL))  # what a chunk of a batch asks for
    settings.WORKER_WARM_MODEL = FAKE_MODEL

    # given a worker that has just been spawned and is loading its model
    loader = warm.warm_start()
    assert loader is not None
    while SlowLoad.loads == 0:
        time.sleep(0.01)

    # when the first task wants the same model while the load is still going on
    answers: list = []
    task = threading.Thread(
        target=lambda: answers.extend(
            engine.run(
                spec,
                [EngineRequest("a", "/v1/chat/completions", {"model": FAKE_MODEL, "messages": []})],
            )
        )
    )
    task.start()
    SlowLoad.gate.set()
    task.join(30)
    loader.join(30)

    # then the engine was loaded once, and the task ran on it
    assert SlowLoad.loads == 1
    assert [a.status_code for a in answers] == [200]
    assert engine.loaded_model == FAKE_MODEL
    assert heartbeat.events == [("loading", FAKE_MODEL), ("loaded", FAKE_MODEL)]


def test_a_worker_stopping_during_the_warm_load_stops_the_loading_engine(
    transactional_db, slow_engine, settings
):
    engine, heartbeat = slow_engine
    register_model(FAKE_MODEL)
    settings.WORKER_WARM_MODEL = FAKE_MODEL
    loader = warm.warm_start()
    while SlowLoad.loads == 0:
        time.sleep(0.01)

    # when the process exits while the load still holds the engine's lock
    engine.stop_at_exit()
    loader.join(30)

    # then the loading engine was stopped rather than waited for
    assert SlowLoad.shutdowns >= 1
    assert not loader.is_alive()


def test_warm_start_is_off_when_told(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    settings.WORKER_WARM_MODEL = "off"
    assert warm.warm_start() is None


@pytest.mark.cluster
def test_a_fresh_worker_reports_its_model_loaded_before_any_batch(transactional_db, tmp_path):
    register_model(FAKE_MODEL)
    with running_cluster(
        tmp_path,
        WORKER_WARM_MODEL="auto",
        WORKER_DEFAULT_MODEL=FAKE_MODEL,
        BATCHSERVER_ENGINE="fake-hosted",
    ) as cluster:
        deadline = time.monotonic() + 60
        worker = None
        while time.monotonic() < deadline:
            worker = Worker.objects.filter(loaded_model=FAKE_MODEL).first()
            if worker is not None and worker.state == Worker.State.IDLE:
                break
            time.sleep(0.2)
        assert worker is not None, cluster.diagnostics()
        assert worker.state == Worker.State.IDLE
        assert "warm start: loading fake-model" in cluster.worker.log_path.read_text()
