"""Settings changed while running: validated, stored, read by the jobs code, audited."""

from __future__ import annotations

import logging

import pytest

from batchserver import live, logstore
from batchserver.errors import Invalid
from batchserver.models import AuditEntry, LogLine, RuntimeSetting
from jobs.models import BatchChunk


def test_a_new_chunk_size_splits_the_next_batch(validated_batch, staff_user):
    live.change("BATCH_CHUNK_SIZE", "3", staff_user)

    batch = validated_batch(lines=10)

    sizes = list(
        BatchChunk.objects.filter(batch=batch).order_by("index").values_list("size", flat=True)
    )
    assert sizes == [3, 3, 3, 1]
    entry = AuditEntry.objects.get(action="setting.change")
    assert (entry.actor, entry.target) == ("ops", "BATCH_CHUNK_SIZE")
    assert "-> 3" in entry.detail


@pytest.mark.parametrize(
    ("name", "raw", "words"),
    [
        ("BATCH_CHUNK_SIZE", "ten", "whole number"),
        ("BATCH_CHUNK_SIZE", "0", "between 1 and"),
        ("API_THROTTLE_RATE", "600 per minute", "600/min"),
        ("BATCH_COMPLETION_WINDOWS", "24h, soon", "soon"),
        ("BATCH_LEASE_SECONDS", "12", "three heartbeats"),
        ("DEFAULT_WEBHOOK_URL", "ftp://example.com/hook", "http"),
        ("DEFAULT_WEBHOOK_URL", "http://127.0.0.1/hook", "not allowed"),
        ("SECRET_KEY", "x", "cannot be changed"),
    ],
)
def test_a_wrong_value_is_refused_and_the_old_one_kept(db, name, raw, words):
    before = live.get(name) if name in live.BY_NAME else None

    with pytest.raises(Invalid) as refused:
        live.change(name, raw, None)

    assert refused.value.param == name
    assert words in refused.value.message
    assert not RuntimeSetting.objects.exists()
    if before is not None:
        assert live.get(name) == before


def test_the_throttle_rate_applies_without_a_restart(client_api):
    assert client_api.get("/v1/files").status_code == 200
    live.change("API_THROTTLE_RATE", "1/min", None)

    answer = client_api.get("/v1/files")

    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "rate_limit_exceeded"


def test_a_reset_goes_back_to_the_environment(db, settings):
    live.change("BATCH_MAX_LINES", "7", None)
    assert live.get("BATCH_MAX_LINES") == 7

    live.reset("BATCH_MAX_LINES", None)

    assert live.get("BATCH_MAX_LINES") == settings.BATCH_MAX_LINES
    assert AuditEntry.objects.filter(action="setting.reset").count() == 1


def test_other_processes_see_a_change_within_the_delay(db, settings):
    settings.LIVE_SETTINGS_SECONDS = 60
    assert live.get("BATCH_MAX_LINES") == settings.BATCH_MAX_LINES
    # another process stores a value: this one keeps its copy until the delay passes
    RuntimeSetting.objects.create(name="BATCH_MAX_LINES", value=5)
    assert live.get("BATCH_MAX_LINES") == settings.BATCH_MAX_LINES

    settings.LIVE_SETTINGS_SECONDS = 0

    assert live.get("BATCH_MAX_LINES") == 5


def test_log_lines_are_stored_capped_with_their_correlation_id(db, settings):
    settings.LOG_STORE_MAX_LINES = 5
    logstore.discard()
    log = logging.getLogger("jobs.test")
    from batchserver import correlation

    with correlation.bind("batch-corr-1"):
        for i in range(8):
            log.warning("line %d <b>&'\"", i)

    logstore.flush()

    kept = list(LogLine.objects.order_by("id"))
    assert len(kept) <= 5
    assert kept[-1].message == "line 7 <b>&'\""
    assert kept[-1].correlation_id == "batch-corr-1"
    assert kept[-1].level == "WARNING" and kept[-1].process == "command"
