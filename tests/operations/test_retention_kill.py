"""A purge SIGKILLed midway (a real ``manage.py purge_batches`` process) resumes on the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from jobs.models import Batch, BatchRequest
from tests.cluster import cluster_env
from tests.conftest import request_line

ROOT = Path(settings.BASE_DIR)


def _purge(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "purge_batches", "--older-than", "30d"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def test_a_killed_purge_resumes_and_shows_purging_meanwhile(
    transactional_db, create_batch, staff_client
):
    # given three batches of 40 lines that ended 40 days ago
    ids = []
    for _ in range(3):
        done = create_batch([request_line(i) for i in range(40)])
        assert done["status"] == "completed"
        ids.append(done["id"])
    Batch.objects.filter(pk__in=ids).update(completed_at=timezone.now() - timedelta(days=40))
    env = {**cluster_env(), "RETENTION_SLICE_ROWS": "1", "PYTHONUNBUFFERED": "1"}

    # when a purge deleting one row per transaction is SIGKILLed once its bar has moved
    process = _purge(env)
    seen = b""
    deadline = time.monotonic() + 60
    while b"] 5/120 rows" not in seen and time.monotonic() < deadline:
        byte = process.stdout.read(1)
        if not byte:
            break
        seen += byte
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)

    # then some rows are gone, and the batch it was in says its answers are incomplete
    left = BatchRequest.objects.filter(batch_id__in=ids).count()
    assert 0 < left < 120, seen[-200:]
    half = [b for b in Batch.objects.filter(pk__in=ids) if b.purge_state == "purging"]
    assert len(half) == 1
    assert not Batch.objects.filter(pk__in=ids, purged_at__isnull=False).exists()
    page = staff_client.get(f"/batches/{half[0].pk}").content.decode()
    assert "purge in progress" in page and "answers incomplete" in page

    # and the next run finishes the job
    finished = subprocess.run(
        [sys.executable, "manage.py", "purge_batches", "--older-than", "30d"],
        cwd=ROOT,
        env={**env, "RETENTION_SLICE_ROWS": "50"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert f"purged 3 batch(es): {left} request rows" in finished.stdout
    assert not BatchRequest.objects.filter(batch_id__in=ids).exists()
    assert {b.purge_state for b in Batch.objects.filter(pk__in=ids)} == {"purged"}
