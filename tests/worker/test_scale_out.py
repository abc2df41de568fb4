"""Scale-out: two workers (two ``qcluster`` processes, each with its own engine) share one batch.

Their own web server and workers, on the Redis broker (django-q2 reads ``REDIS_URL``) under a
cluster name of their own, so no other test run's queue is read or fed. The fake engine takes
``FAKE_DELAY_PER_REQUEST_MS`` per request, so a 2,000-line batch in chunks of 50 runs long enough
for the second worker to join through ``run_work``'s fan-out.

It lives outside ``tests/e2e`` so that the e2e package's live cluster (whose worker shares the
test database) is stopped before it runs: ``running_cluster`` refuses to start beside it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter

import pytest

from batchserver.models import ApiKey
from jobs.models import BatchChunk, Worker
from models_registry.services import register_model
from tests.cluster import extra_worker, running_cluster
from tests.conftest import FAKE_MODEL, request_line
from tests.e2e.conftest import (
    BAD_LOG_LINE,
    make_openai_client,
    parse_jsonl,
    start_batch,
    wait_for_batch,
)

redis = pytest.importorskip("redis")

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

REDIS_URL = os.environ.get("E2E_REDIS_URL", "redis://127.0.0.1:6379/0")
LINES = 2000
CHUNK = 50


@pytest.fixture
def redis_queue() -> str:
    """A cluster name no one else uses; its Redis keys are removed afterwards."""
    connection = redis.Redis.from_url(REDIS_URL)
    try:
        connection.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {REDIS_URL} (CI starts one: .ci/run)")
    name = f"bs-scale-{uuid.uuid4().hex[:10]}"
    yield name
    for key in connection.scan_iter(f"django_q:{name}:*"):
        connection.delete(key)


def _group_of(worker_id: str) -> int | None:
    pid = int(worker_id.rsplit(":", 1)[1])
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_two_workers_share_one_batch_on_the_redis_broker(redis_queue, tmp_path):
    register_model(FAKE_MODEL)
    raw_key = ApiKey.issue("scale-out")[1]
    env = {
        "REDIS_URL": REDIS_URL,
        "Q_CLUSTER_NAME_DEFAULT": redis_queue,
        "BATCH_CHUNK_SIZE": str(CHUNK),
        "FAKE_DELAY_PER_REQUEST_MS": "4",
    }
    with (
        running_cluster(tmp_path, **env) as cluster,
        extra_worker(cluster, tmp_path) as second,
    ):
        # both qclusters report to Redis under this run's name: the broker really is Redis
        stats = redis.Redis.from_url(REDIS_URL).keys(f"django_q:{redis_queue}:cluster*")
        assert len(stats) == 2, stats

        # given one batch of 2,000 requests (40 chunks of 50, about 0.2 s each)
        client = make_openai_client(cluster, raw_key)
        batch = start_batch(client, [request_line(i) for i in range(LINES)])

        # when it runs to the end
        done = wait_for_batch(client, batch.id, cluster, timeout=180)

        # then every custom_id is in the output exactly once
        assert done.status == "completed", done.errors
        assert (done.request_counts.completed, done.request_counts.failed) == (LINES, 0)
        output = parse_jsonl(client.files.content(done.output_file_id).text)
        assert Counter(line["custom_id"] for line in output) == Counter(
            f"req-{i}" for i in range(LINES)
        )

        # and both workers ran chunks of it
        chunks = Counter(
            BatchChunk.objects.filter(batch_id=batch.id).values_list("worker_id", flat=True)
        )
        assert sum(chunks.values()) == LINES // CHUNK
        groups = Counter()
        for worker_id, count in chunks.items():
            groups[_group_of(worker_id)] += count
        print(f"chunks per worker: {dict(chunks)}")
        assert set(groups) == {cluster.worker.pgid, second.pgid}, (chunks, groups)
        assert min(groups.values()) >= 4, f"one worker barely helped: {dict(chunks)}"

        # each reports its work in its next heartbeat (every WORKER_HEARTBEAT_SECONDS)
        def reported_both() -> bool:
            reported = Worker.objects.filter(worker_id__in=list(chunks))
            return {w.loaded_model for w in reported} == {FAKE_MODEL} and all(
                w.requests_done > 0 for w in reported
            )

        deadline = time.monotonic() + 30
        while not reported_both() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert reported_both(), list(Worker.objects.values("worker_id", "loaded_model"))

        for process in (cluster.web, cluster.worker, second):
            bad = [
                line
                for line in process.log_path.read_text(errors="replace").splitlines()
                if BAD_LOG_LINE.search(line)
            ]
            assert not bad, f"{process.name} logged errors:\n" + "\n".join(bad[:20])
