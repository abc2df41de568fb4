"""Which chunk a worker claims next, and what happens when a model will not load."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from jobs import tasks
from jobs.models import BatchChunk
from jobs.runner import claim_chunk
from models_registry.services import register_model
from tests.conftest import FAKE_MODEL


def test_priority_first_then_loaded_model_then_age(validated_batch):
    # given an old batch, a newer batch on the loaded model, and a newest high-priority batch
    oldest = validated_batch(model_name="other-model", age=300)
    loaded = validated_batch(model_name=FAKE_MODEL, age=100)
    urgent = validated_batch(model_name="other-model", priority=5, age=0)

    # when a worker with FAKE_MODEL loaded claims chunks one after another
    order = []
    for _ in range(3):
        chunk = claim_chunk("w1", FAKE_MODEL)
        order.append(chunk.batch_id)
        BatchChunk.objects.filter(pk=chunk.pk).update(status="done")

    # then priority wins, then the loaded model, then age
    assert order == [urgent.id, loaded.id, oldest.id]


def test_without_a_loaded_model_the_oldest_goes_first(validated_batch):
    newer = validated_batch(age=10)
    older = validated_batch(model_name="other-model", age=500)
    assert claim_chunk("w1", None).batch_id == older.id
    assert newer.id


def test_leased_chunk_is_not_claimed_again_until_its_lease_runs_out(validated_batch):
    batch = validated_batch()
    first = claim_chunk("w1", None)
    assert claim_chunk("w2", None) is None  # the only chunk is leased
    BatchChunk.objects.filter(pk=first.pk).update(leased_until=timezone.now() - timedelta(1))
    again = claim_chunk("w2", None)
    assert again.pk == first.pk and again.worker_id == "w2" and again.attempts == 2
    assert again.batch_id == batch.id


def test_model_that_never_loads_fails_its_batch_and_the_worker_goes_on(
    settings, validated_batch, client_api
):
    # given a model that fails to load, and a healthy batch queued behind it
    settings.BATCH_LOAD_BACKOFF_SECONDS = 0
    register_model("broken-model", extra_args={"fake_fail_load": True})
    broken = validated_batch(model_name="broken-model", age=60)
    healthy = validated_batch(age=0)

    # when the worker runs
    tasks.run_work()

    # then the broken batch failed after three load attempts, with a clear error...
    broken.refresh_from_db()
    assert broken.status == "failed"
    assert broken.load_failures == 3
    assert broken.errors[0]["code"] == "model_load_failed"
    assert "fails to load" in broken.errors[0]["message"] or "fail" in broken.errors[0]["message"]
    errors = client_api.get(f"/v1/files/{broken.error_file_id}/content")
    body = b"".join(errors.streaming_content).decode()
    assert body.count("model_load_failed") == 2
    # ...and the healthy batch behind it completed
    healthy.refresh_from_db()
    assert healthy.status == "completed"


def test_a_batch_failed_for_its_model_on_a_full_disk_still_ends_failed(
    settings, validated_batch, monkeypatch
):
    # given a model that never loads, and a disk that is full when the batch is failed
    settings.BATCH_LOAD_BACKOFF_SECONDS = 0
    register_model("broken-model", extra_args={"fake_fail_load": True})
    broken = validated_batch(model_name="broken-model")
    from jobs import assembly

    real_assemble = assembly.assemble_files

    def disk_full(batch):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(assembly, "assemble_files", disk_full)
    tasks.run_work()
    broken.refresh_from_db()
    assert broken.status == "in_progress" and broken.load_failures == 3

    # when space returns and the periodic tick runs
    monkeypatch.setattr(assembly, "assemble_files", real_assemble)
    tasks.tick()

    # then the batch ends failed (not completed), with the load error it had
    broken.refresh_from_db()
    assert broken.status == "failed"
    assert broken.errors[0]["code"] == "model_load_failed"
    assert "fail" in broken.errors[0]["message"]
