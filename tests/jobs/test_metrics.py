"""/metrics: the batch_* series, computed from the database at scrape time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from jobs.models import Batch, Worker
from jobs.services import batches as batch_services
from jobs.services import lifecycle
from jobs.worker.heartbeat import worker_id
from models_registry.models import Model
from tests.conftest import FAKE_MODEL, jsonl, request_line


def scrape() -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of every batch_* sample on /metrics."""
    response = Client().get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            if sample.name.startswith("batch_"):
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def finished(create_batch, settings):
    """One completed batch with two answers and one failed line, plus one failed batch."""
    settings.BATCH_CHUNK_SIZE = 1  # chunks after the one that loads the model are measured
    ok = create_batch([request_line(1), request_line(2), request_line(3, content="[[fail]]")])
    bad = create_batch(["{bad"])
    assert (ok["status"], bad["status"]) == ("completed", "failed")
    return ok, bad


def test_every_series_after_a_batch(finished):
    ok, _ = finished
    samples = scrape()

    assert value(samples, "batch_jobs_total", status="completed", model=FAKE_MODEL) == 1
    assert value(samples, "batch_jobs_total", status="failed", model="") == 1
    assert value(samples, "batch_requests_total", outcome="completed") == 2
    assert value(samples, "batch_requests_total", outcome="failed") == 1
    assert value(samples, "batch_requests_total", outcome="expired") == 0
    usage = ok["usage"]
    assert value(samples, "batch_tokens_total", kind="input") == usage["input_tokens"]
    assert value(samples, "batch_tokens_total", kind="output") == usage["output_tokens"] > 0
    measured = Model.objects.get(name=FAKE_MODEL).measured_output_tokens_per_second
    assert value(samples, "batch_throughput_tokens_per_second", model=FAKE_MODEL) == measured
    assert value(samples, "batch_queue_depth", status="in_progress") == 0
    assert value(samples, "batch_queue_pending_requests") == 0
    # both batches ended within a minute of their creation
    assert value(samples, "batch_jobs_duration_seconds_count") == 2
    assert value(samples, "batch_jobs_duration_seconds_bucket", le="60.0") == 2
    assert value(samples, "batch_jobs_duration_seconds_bucket", le="+Inf") == 2
    assert 0 <= value(samples, "batch_jobs_duration_seconds_sum") < 60
    # the worker that ran it (this process, tasks inline) is up
    assert value(samples, "batch_worker_up", worker=worker_id()) == 1
    assert value(samples, "batch_workers_alive") == 1


def test_durations_fall_into_their_buckets(finished):
    ok, bad = finished
    Batch.objects.filter(pk=ok["id"]).update(
        created_at=timezone.now() - timedelta(minutes=10), completed_at=timezone.now()
    )
    samples = scrape()
    assert value(samples, "batch_jobs_duration_seconds_bucket", le="300.0") == 1
    assert value(samples, "batch_jobs_duration_seconds_bucket", le="900.0") == 2
    assert 600 <= value(samples, "batch_jobs_duration_seconds_sum") < 660


def test_queue_depth_cancelled_lines_and_a_gone_worker(api_key, upload, model):
    # given a batch still validating, and a validated batch cancelled before it ran
    def create(lines):
        file = upload(jsonl(lines))
        return batch_services.create_batch(
            api_key[0],
            input_file_id=file["id"],
            endpoint="/v1/chat/completions",
            completion_window="24h",
        )

    create([request_line(1)])
    cancelled = create([request_line(1), request_line(2)])
    lifecycle.validate_and_split(cancelled)
    batch_services.request_cancel(cancelled)
    lifecycle.settle(cancelled)
    # and a worker that stopped beating ten minutes ago
    Worker.objects.create(
        worker_id="gone:1",
        hostname="gone",
        pid=1,
        last_heartbeat=timezone.now() - timedelta(minutes=10),
    )

    samples = scrape()

    assert value(samples, "batch_queue_depth", status="validating") == 1
    assert value(samples, "batch_queue_pending_requests") == 0
    assert value(samples, "batch_jobs_total", status="cancelled", model=FAKE_MODEL) == 1
    assert value(samples, "batch_requests_total", outcome="cancelled") == 2
    assert value(samples, "batch_requests_total", outcome="failed") == 0
    assert value(samples, "batch_worker_up", worker="gone:1") == 0
    assert value(samples, "batch_workers_alive") == 0
