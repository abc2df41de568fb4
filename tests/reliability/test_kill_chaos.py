"""SIGKILL the worker's whole process group again and again mid-batch: no line lost or repeated.

A 5,000-request batch runs on the fake engine, slowed to 20 ms per request (1 s per chunk of
50, 100 s of work in all: ten kill cycles on a loaded CI machine once came close to 50 s), so
every kill lands in the middle of some chunk and the batch is still running at the last kill.
At least ten times, at a random moment, the whole qcluster process group is SIGKILLed, checked
to be gone to the last process, and a fresh qcluster is started. Leases of 3 s with a 1 s
heartbeat let the killed chunk be claimed again soon after. Then the output and error files
must hold exactly 5,000 valid JSON lines, every custom_id once, and the batch must be completed.

Figures (kills, seconds from each kill to the next committed chunk, chunks run more than once)
go to ``<data dir>/reliability/kill_chaos.json``.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections import Counter

import pytest

from batchserver.models import ApiKey
from jobs.models import Batch, BatchChunk, BatchRequest
from jobs.worker.models import Worker
from models_registry.services import register_model
from tests.cluster import ClusterProcess, kill_group, running_cluster, start_worker
from tests.conftest import FAKE_MODEL
from tests.reliability.conftest import (
    ENDPOINT,
    check_exactly_once,
    input_lines,
    nudge,
    record_figures,
    wait_for,
)

pytestmark = [pytest.mark.cluster]

REQUESTS = 5000
KILLS = int(os.environ.get("CHAOS_KILLS", "10"))
SEED = int(os.environ.get("CHAOS_SEED", str(int(time.time()))))
WORKER_ENV = {
    "BATCH_CHUNK_SIZE": "50",
    "FAKE_DELAY_PER_REQUEST_MS": "20",
    "BATCH_LEASE_SECONDS": "3",
    "WORKER_HEARTBEAT_SECONDS": "1",
    "BATCH_TASK_SLICE_SECONDS": "5",
}
RESUME_TIMEOUT = 60.0
FINISH_TIMEOUT = 240.0


def _done(batch_id: str) -> int:
    return BatchRequest.objects.filter(batch_id=batch_id).exclude(status="pending").count()


def _status(batch_id: str) -> str:
    return Batch.objects.values_list("status", flat=True).get(pk=batch_id)


def _chunks_by_worker(batch_id: str) -> dict[str, int]:
    """Who ran the batch's chunks (a worker of another test on this database would show here)."""
    chunks = BatchChunk.objects.filter(batch_id=batch_id)
    return dict(Counter(chunks.values_list("worker_id", flat=True)))


def test_sigkilled_workers_lose_and_repeat_no_line(committed, tmp_path):
    rng = random.Random(SEED)
    with running_cluster(tmp_path, **WORKER_ENV) as cluster:
        import openai

        register_model(FAKE_MODEL)
        client = openai.OpenAI(
            base_url=f"{cluster.url}/v1", api_key=ApiKey.issue("chaos")[1], max_retries=2
        )
        upload = client.files.create(file=("chaos.jsonl", input_lines(REQUESTS)), purpose="batch")
        batch_id = client.batches.create(
            input_file_id=upload.id, endpoint=ENDPOINT, completion_window="24h"
        ).id
        worker: ClusterProcess = cluster.worker
        logs = []

        def diagnostics() -> str:
            return f"{cluster.diagnostics()}\n--- {worker.name} ---\n{worker.log_tail()}"

        # given the batch running on the worker
        wait_for(lambda: _done(batch_id) > 0, 60, "first chunk", diagnostics=diagnostics)

        try:
            # when its whole process group is SIGKILLed at random moments, and restarted each time
            resumes, restarts, leftovers, in_flight = [], [], [], set()
            for kill in range(1, KILLS + 1):
                time.sleep(rng.uniform(0.3, 2.5))
                assert _status(batch_id) == "in_progress", (
                    f"batch ended before kill {kill}; chunks by worker: "
                    f"{_chunks_by_worker(batch_id)}; workers: "
                    f"{list(Worker.objects.values_list('worker_id', 'state'))}"
                )
                in_flight |= set(
                    BatchChunk.objects.filter(batch_id=batch_id, status="leased").values_list(
                        "index", flat=True
                    )
                )
                killed_at = time.monotonic()
                leftovers.append(kill_group(worker))
                assert leftovers[-1] == [], f"kill {kill}: processes left: {leftovers[-1]}"
                done_at_kill = _done(batch_id)
                worker = start_worker(cluster.env, tmp_path, f"worker-{kill}")
                logs.append(worker)
                restarts.append(time.monotonic() - killed_at)
                nudge()
                wait_for(
                    lambda n=done_at_kill: _done(batch_id) > n,
                    RESUME_TIMEOUT,
                    f"progress after kill {kill}",
                    while_waiting=nudge,
                    diagnostics=diagnostics,
                )
                resumes.append(time.monotonic() - killed_at)

            # then the batch completes ...
            wait_for(
                lambda: _status(batch_id) not in ("in_progress", "finalizing"),
                FINISH_TIMEOUT,
                "end of the batch",
                while_waiting=nudge,
                diagnostics=diagnostics,
            )
            batch = client.batches.retrieve(batch_id)
            texts = [client.files.content(batch.output_file_id).text]
            if batch.error_file_id:
                texts.append(client.files.content(batch.error_file_id).text)
            graceful = worker.stop()
            assert not worker.members(), "the last worker left processes behind"
            assert graceful
        finally:  # a failed test stops the workers it restarted, or they outlive it
            for process in logs:
                if process.members():
                    process.stop()

    assert batch.status == "completed", batch
    assert batch.request_counts.total == REQUESTS
    assert batch.request_counts.completed == REQUESTS
    # ... with every custom_id exactly once in its files, every line valid JSON
    figures = check_exactly_once(texts, {f"req-{i}" for i in range(REQUESTS)})
    # ... the chunks in flight at a kill were run again, and no restarted worker failed
    attempts = dict(BatchChunk.objects.filter(batch_id=batch_id).values_list("index", "attempts"))
    rerun = sum(attempts[i] >= 2 for i in in_flight)
    assert rerun >= len(in_flight) - 1, {i: attempts[i] for i in in_flight}  # -1: a kill may
    # land right after a chunk's commit, between the test's look at the leases and the signal
    for process in logs:
        assert "Traceback" not in process.log_path.read_text(errors="replace"), process.log_tail()

    record_figures(
        "kill_chaos",
        {
            **figures,
            "requests": REQUESTS,
            "kills_survived": len(resumes),
            "processes_left_after_kills": sum(len(x) for x in leftovers),
            "chunks_in_flight_at_a_kill": len(in_flight),
            "chunk_runs_beyond_first": sum(a - 1 for a in attempts.values() if a > 1),
            "restart_seconds_median": round(statistics.median(restarts), 2),
            "resume_seconds": [round(s, 2) for s in resumes],
            "resume_seconds_median": round(statistics.median(resumes), 2),
            "resume_seconds_max": round(max(resumes), 2),
            "seed": SEED,
        },
    )
