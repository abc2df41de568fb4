"""End-to-end fixtures: a real web server and a real django-q2 worker on the pytest test database.

``live_cluster`` (one for the tests of this package) starts, each in its own process group:

- ``gunicorn batchserver.wsgi`` with two workers on a free loopback port, serving static files
  through whitenoise from ``STATIC_ROOT`` (``collectstatic`` runs first, into the data folder the
  tests use), with ``DEBUG`` off — the way production serves the admin and the API docs;
- ``manage.py qcluster``, one django-q2 cluster with the fake engine, ``BATCH_CHUNK_SIZE=5`` (so a
  small batch spans several chunks, and a cancel lands between two of them) and
  ``FAKE_HANG_SECONDS=4`` (a ``[[hang]]`` line keeps a batch in progress for that long).

Both run with ``tests.settings``, ``Q_SYNC=0`` and ``DATABASE_URL`` naming the database that
pytest-django created (read from ``settings.DATABASES`` after ``django_db_setup``: the file
``<data dir>/test-db.sqlite3`` on SQLite, ``test_<name>`` on PostgreSQL). Every test here runs
with ``transactional_db`` (the autouse ``_committed``), so that what it writes is committed and
visible to the other processes; pytest-django empties every table after each such test, which
also removes the django-q2 schedules that migration ``jobs/0002`` created — the tests do not need
the periodic tick (and must not lean on it: ``_cluster_logs_stay_clean`` fails a test whose
processes logged an error or a failed task). Each test waits for its batches to end before it
returns, so no worker is busy with rows that the flush is about to delete.

Teardown sends SIGTERM to each leader (gunicorn's master and qcluster's main process stop their
children gracefully), then SIGTERM and finally SIGKILL to whatever is left in the group, and
asserts that no process of either group remains. The leader is signalled first because qcluster's
main process hangs when its children are killed under it (as a SIGTERM to the whole group does).

Logs of both processes are in the session's temporary folder; failures quote their last lines.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from batchserver.models import ApiKey
from models_registry.services import register_model
from tests.cluster import LiveCluster, running_cluster
from tests.conftest import FAKE_MODEL, jsonl

BATCH_TIMEOUT = 60.0
ENDPOINT = "/v1/chat/completions"
TERMINAL = {"completed", "failed", "expired", "cancelled"}
BAD_LOG_LINE = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b|Failed '|database is locked")


@pytest.fixture(scope="package")
def live_cluster(django_db_setup, tmp_path_factory) -> Iterator[LiveCluster]:
    """A gunicorn web server and a qcluster worker on the test database (see module docstring)."""
    with running_cluster(tmp_path_factory.mktemp("cluster-logs")) as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def _committed(transactional_db) -> None:
    """Every e2e test writes for real (other processes must see it) and starts on empty tables.

    It also keeps the e2e tests together: pytest-django runs tests in the order db,
    transactional_db, no database; a test here that needs no database of its own would
    otherwise run after every other package's tests, and the cluster would start twice.
    """


@pytest.fixture(autouse=True)
def _cluster_logs_stay_clean(request) -> Iterator[None]:
    """A test that used the cluster leaves no traceback or failed task in its logs.

    Without this, a failure that the periodic tick later repairs (a task that died on a lock,
    say) would pass unnoticed, only slower.
    """
    if "live_cluster" not in request.fixturenames:
        yield
        return
    cluster: LiveCluster = request.getfixturevalue("live_cluster")
    processes = (cluster.web, cluster.worker)
    offsets = {p.name: p.log_path.stat().st_size for p in processes}
    yield
    for process in processes:
        with process.log_path.open("rb") as log:
            log.seek(offsets[process.name])
            new = log.read().decode(errors="replace")
        bad = [line for line in new.splitlines() if BAD_LOG_LINE.search(line)]
        assert not bad, f"{process.name} logged errors:\n" + "\n".join(bad[:20])


@pytest.fixture
def live_api_key(live_cluster) -> str:
    """A raw API key, committed, with the fake model registered (both visible to the cluster)."""
    live_cluster.assert_running()
    register_model(FAKE_MODEL)
    return ApiKey.issue("e2e")[1]


def make_openai_client(live_cluster: LiveCluster, raw_key: str):
    import openai

    return openai.OpenAI(
        base_url=f"{live_cluster.url}/v1", api_key=raw_key, max_retries=0, timeout=30
    )


@pytest.fixture
def openai_client(live_cluster, live_api_key):
    """The official SDK, pointed at the live web server with ``live_api_key``."""
    return make_openai_client(live_cluster, live_api_key)


@pytest.fixture
def other_openai_client(live_cluster):
    """The SDK with a second, unrelated API key."""
    return make_openai_client(live_cluster, ApiKey.issue("e2e-other")[1])


def wait_for_batch(
    client,
    batch_id: str,
    cluster: LiveCluster,
    until: Callable[[Any], bool] = lambda b: b.status in TERMINAL,
    timeout: float = BATCH_TIMEOUT,
):
    """Poll ``batches.retrieve`` until ``until(batch)`` holds; fail with the logs after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if until(batch):
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(
                f"batch {batch_id} still {batch.status} {batch.request_counts} after "
                f"{timeout}s\n{cluster.diagnostics()}"
            )
        cluster.assert_running()
        time.sleep(0.2)


def parse_jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def upload(client, lines: list[dict[str, Any] | str], filename: str = "input.jsonl"):
    """Upload JSONL lines through the SDK as a batch input file."""
    return client.files.create(file=(filename, jsonl(lines)), purpose="batch")


def start_batch(client, lines: list[dict[str, Any] | str], **extra: Any):
    """Upload ``lines`` and create a 24h chat-completions batch over them."""
    file = upload(client, lines)
    return client.batches.create(
        input_file_id=file.id, endpoint=ENDPOINT, completion_window="24h", **extra
    )
