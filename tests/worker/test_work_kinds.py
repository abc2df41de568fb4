"""The worker runtime's interface, proven with a second, test-only kind of GPU work.

``ExclusiveJobs`` is a fake training-like kind: each job wants the GPU alone and runs in several
slices. It records what the engine looked like while it ran (stopped: no engine host process
left) so the tests can show that the runtime stops the engine before exclusive work, loads it
again after, orders kinds by priority then age, extends every kind's leases from the heartbeat,
and lets a job be cancelled between slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from jobs.worker import kinds, loop
from jobs.worker.engine.host import group_members
from jobs.worker.engine.manager import get_engine
from jobs.worker.heartbeat import Heartbeat, worker_id
from tests.conftest import FAKE_MODEL, request_line


@dataclass
class Job:
    id: str
    priority: int
    created_at: datetime
    owner_id: int | None = None
    slices_needed: int = 1
    slices_run: int = 0
    status: str = "queued"  # queued | running | succeeded | cancelled
    leased_to: str = ""
    leased_until: datetime | None = None
    seen: list[dict] = field(default_factory=list)  # what each slice saw of the engine


class ExclusiveJobs(kinds.WorkKind):
    name = "exclusive-test"
    exclusive = True

    def __init__(self, order: list[str]) -> None:
        self.jobs: dict[str, Job] = {}
        self.order = order  # shared log of what ran, across kinds
        self.extended: list[tuple[str, datetime]] = []

    def add(self, job: Job) -> Job:
        self.jobs[job.id] = job
        return job

    def _waiting(self) -> list[Job]:
        jobs = [j for j in self.jobs.values() if j.status == "queued"]
        return sorted(jobs, key=lambda j: (-j.priority, j.created_at))

    def peek(self, worker_id, loaded_model):
        waiting = self._waiting()
        if not waiting:
            return None
        return kinds.Candidate(self.name, waiting[0].priority, waiting[0].created_at)

    def claim(self, worker_id, loaded_model):
        waiting = self._waiting()
        if not waiting:
            return None
        job = waiting[0]
        job.status, job.leased_to = "running", worker_id
        job.leased_until = timezone.now() + timedelta(seconds=60)
        return kinds.Unit(kind=self.name, id=job.id, label=f"job {job.id}", payload=job)

    def run(self, unit, work):
        job: Job = unit.payload
        engine = work.engine
        job.seen.append({"engine_loaded": engine.loaded_model, "backend": engine.backend})
        job.slices_run += 1
        self.order.append(job.id)
        more = job.slices_run < job.slices_needed
        if not more:
            job.status = "succeeded"
        return kinds.Outcome(items=1, more=more)

    def extend_leases(self, worker_id, until):
        self.extended.append((worker_id, until))
        return sum(1 for j in self.jobs.values() if j.leased_to == worker_id)

    def release(self, unit):
        job: Job = unit.payload
        if job.status == "running":
            job.status, job.leased_to = "queued", ""

    def requeue_orphans(self, gone_worker_ids):
        return 0

    def has_work(self):
        return bool(self._waiting())

    def queue_items(self):
        return [
            kinds.QueueItem(
                kind=self.name,
                id=j.id,
                owner_id=j.owner_id,
                model="",
                priority=j.priority,
                created_at=j.created_at,
                status=j.status,
                running=j.status == "running",
                paused=False,
                done=j.slices_run,
                total=j.slices_needed,
            )
            for j in self.jobs.values()
            if j.status in ("queued", "running")
        ]


@pytest.fixture
def order(monkeypatch):
    """Every unit that runs, in order: batch chunks are logged by their batch id."""
    ran: list[str] = []
    batch_kind = kinds.get("batch")
    original = batch_kind.run

    def logged(unit, work):
        ran.append(unit.batch_id)
        return original(unit, work)

    monkeypatch.setattr(batch_kind, "run", logged)
    return ran


@pytest.fixture
def exclusive(order):
    kind = ExclusiveJobs(order)
    kinds.register(kind)
    yield kind
    kinds.unregister(kind.name)


@pytest.fixture
def hosted_engine(settings):
    """The engine in its own host process, as in production (the fake backend inside)."""
    settings.BATCHSERVER_ENGINE = "fake-hosted"
    engine = get_engine()
    yield engine
    engine.shutdown()


def test_the_engine_is_stopped_during_exclusive_work_and_loaded_again_after(
    create_batch, exclusive, hosted_engine
):
    # given a worker whose engine has a model loaded, in its own process group
    create_batch([request_line(0)])
    assert hosted_engine.loaded_model == FAKE_MODEL
    host_group = hosted_engine.backend.pgid
    assert group_members(host_group)

    # when an exclusive job is claimed and runs
    job = exclusive.add(Job("job-1", priority=0, created_at=timezone.now()))
    assert loop.run_work() == 1

    # then during it the engine held nothing and its whole process group was gone
    assert job.seen == [{"engine_loaded": None, "backend": None}]
    assert group_members(host_group) == []
    # and after it the same model is loaded again, in a new engine host
    assert job.status == "succeeded"
    assert hosted_engine.loaded_model == FAKE_MODEL
    assert hosted_engine.backend.pgid != host_group


def test_kinds_are_ordered_by_priority_then_age(create_batch, exclusive, validated_batch, order):
    # given an old batch, a newer training-like job, and a newest but urgent job
    now = timezone.now()
    old_batch = validated_batch(age=300)
    exclusive.add(Job("newer", priority=0, created_at=now - timedelta(seconds=100)))
    exclusive.add(Job("urgent", priority=5, created_at=now))

    # when the worker runs everything
    loop.run_work()

    # then the urgent job first, the old batch next (older than the newer job), then the job
    assert order == ["urgent", old_batch.id, "newer"]


def test_the_queue_shows_every_kind_in_claim_order(client_api, api_key, exclusive, validated_batch):
    now = timezone.now()
    batch = validated_batch(age=300)
    exclusive.add(Job("newer", priority=0, created_at=now, owner_id=api_key[0].pk))
    exclusive.add(Job("urgent", priority=9, created_at=now, owner_id=api_key[0].pk))

    entries = client_api.get("/v1/queue").json()["data"]

    assert [(e["kind"], e["id"], e["position"]) for e in entries] == [
        ("exclusive-test", "urgent", 1),
        ("batch", batch.id, 2),
        ("exclusive-test", "newer", 3),
    ]


def test_a_long_job_runs_in_slices_and_can_be_cancelled_between_them(exclusive, db, monkeypatch):
    # given a job that needs three slices, and a task that runs one slice and hands over
    job = exclusive.add(Job("long", priority=0, created_at=timezone.now(), slices_needed=3))
    handed_over = []
    monkeypatch.setattr(loop, "async_task", lambda *args: handed_over.append(args))

    # when one task runs, then one slice ran, the job was released and a continuation queued
    assert loop.run_work() == 1
    assert (job.slices_run, job.status) == (1, "queued")
    assert handed_over == [(loop.RUN_WORK_TASK,)]

    # when it is cancelled before the next slice, then no further slice runs
    job.status = "cancelled"
    assert loop.run_work() == 0
    assert job.slices_run == 1


def test_the_heartbeat_extends_the_leases_of_every_kind(exclusive, db):
    Heartbeat().beat()
    assert exclusive.extended and exclusive.extended[0][0] == worker_id()


def test_a_fresh_worker_warms_no_model_while_exclusive_work_waits(
    exclusive, validated_batch, settings
):
    from jobs.worker.warm import choose_model

    settings.WORKER_WARM_MODEL = FAKE_MODEL
    assert choose_model(worker_id()) is not None  # nothing exclusive waiting: the batch's model

    # given training-like work waiting for the GPU alone
    exclusive.add(Job("ft-1", priority=0, created_at=timezone.now()))

    # then a worker that starts loads nothing it would have to stop at once
    assert choose_model(worker_id()) is None
