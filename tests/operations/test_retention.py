"""Retention: old batches lose prompts, answers and files, keep their summary; a kill resumes."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from batchserver import live
from batchserver.models import AuditEntry
from jobs.models import Batch, BatchChunk, BatchRequest, File
from jobs.services import retention
from jobs.tasks import purge_old_batches
from tests.conftest import request_line


@pytest.fixture
def old_batch(create_batch):
    """A completed batch of 12 requests that ended 40 days ago."""

    def _old(days: float = 40, lines: int = 12) -> Batch:
        done = create_batch([request_line(i) for i in range(lines)])
        assert done["status"] == "completed", done
        Batch.objects.filter(pk=done["id"]).update(
            completed_at=timezone.now() - timedelta(days=days)
        )
        return Batch.objects.get(pk=done["id"])

    return _old


def test_purge_keeps_the_summary_and_deletes_rows_chunks_and_files(old_batch, client_api):
    batch, recent = old_batch(), old_batch(days=1)
    files = [batch.input_file_id, batch.output_file_id]

    report = retention.purge_batches(timedelta(days=30))

    assert report.batches == [batch.pk] and report.rows == 12 and report.files == 2
    assert not BatchRequest.objects.filter(batch=batch).exists()
    assert not BatchChunk.objects.filter(batch=batch).exists()
    assert not File.objects.filter(pk__in=files).exists()
    assert BatchRequest.objects.filter(batch=recent).count() == 12  # the recent one is kept
    # the summary stays: the API still answers with counts and status
    kept = client_api.get(f"/v1/batches/{batch.pk}").json()
    assert kept["status"] == "completed" and kept["request_counts"]["completed"] == 12
    assert Batch.objects.get(pk=batch.pk).purge_state == "purged"


def test_dry_run_counts_and_deletes_nothing(old_batch):
    batch = old_batch()
    out = io.StringIO()

    call_command("purge_batches", "--older-than", "30d", "--dry-run", stdout=out)

    assert "would purge 1 batch(es): 12 request rows, 2 files" in out.getvalue()
    assert BatchRequest.objects.filter(batch=batch).count() == 12


def test_the_command_shows_progress_and_is_audited(old_batch, settings):
    settings.RETENTION_SLICE_ROWS = 5
    old_batch()
    out = io.StringIO()

    call_command("purge_batches", "--older-than", "30d", stdout=out)

    text = out.getvalue()
    assert "] 5/12 rows" in text and "] 12/12 rows" in text
    assert "purged 1 batch(es): 12 request rows" in text
    assert AuditEntry.objects.get(action="retention.purge").actor == "manage.py"


def test_a_bad_age_is_refused(db):
    with pytest.raises(CommandError, match="not an age"):
        call_command("purge_batches", "--older-than", "a while")


def test_a_purge_interrupted_midway_resumes_and_never_shows_complete(
    old_batch, settings, staff_client
):
    settings.RETENTION_SLICE_ROWS = 5
    batch = old_batch()

    class Killed(BaseException):
        pass

    def kill_after_first_slice(done, total):
        raise Killed

    with pytest.raises(Killed):
        retention.purge_batches(timedelta(days=30), progress=kill_after_first_slice)

    # half-purged: some rows gone, files still there, the batch says so on its page
    assert BatchRequest.objects.filter(batch=batch).count() == 7
    half = Batch.objects.get(pk=batch.pk)
    assert half.purge_state == "purging"
    page = staff_client.get(f"/batches/{batch.pk}").content.decode()
    assert "purge in progress" in page and "answers incomplete" in page

    report = retention.purge_batches(timedelta(days=30))

    assert report.batches == [batch.pk] and report.rows == 7
    assert Batch.objects.get(pk=batch.pk).purge_state == "purged"
    assert "purged " in staff_client.get(f"/batches/{batch.pk}").content.decode()


def test_the_daily_schedule_follows_the_live_setting(old_batch):
    batch = old_batch()
    assert purge_old_batches() == "retention off"  # off by default
    assert BatchRequest.objects.filter(batch=batch).exists()

    live.change("BATCH_RETENTION_DAYS", "30", None)

    assert purge_old_batches().startswith("purged 1 batch(es)")
    assert AuditEntry.objects.filter(action="retention.purge", actor="schedule").exists()
