"""Operator controls through their forms: any key's batch, a message after each, an audit entry."""

from __future__ import annotations

from django.utils import timezone

from batchserver.models import AuditEntry
from jobs.models import Batch, WebhookDelivery, Worker
from tests.conftest import csrf_token


def _post(client, url: str, **data):
    data["csrfmiddlewaretoken"] = csrf_token(client)
    return client.post(url, data, follow=True)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_pause_priority_resume_cancel_any_keys_batch_from_its_page(
    staff_client, validated_batch, other_key
):
    batch = validated_batch(lines=3, key=other_key[0])  # not the staff user's: any key
    url = f"/batches/{batch.pk}/action"

    page = staff_client.get(f"/batches/{batch.pk}")
    assert b'name="csrfmiddlewaretoken"' in page.content and b'value="pause"' in page.content

    answer = _post(staff_client, url, action="pause", next=f"/batches/{batch.pk}")
    assert f"{batch.pk}: pause done." in _messages(answer)
    assert Batch.objects.get(pk=batch.pk).paused

    answer = _post(staff_client, url, action="priority", priority="7")
    assert Batch.objects.get(pk=batch.pk).priority == 7

    answer = _post(staff_client, url, action="priority", priority="soon")
    assert "priority must be a whole number." in _messages(answer)

    _post(staff_client, url, action="resume")
    assert not Batch.objects.get(pk=batch.pk).paused
    answer = _post(staff_client, url, action="cancel")
    assert Batch.objects.get(pk=batch.pk).status in ("cancelling", "cancelled")

    trail = list(
        AuditEntry.objects.about(batch.pk).order_by("id").values_list("actor", "action", "ok")
    )
    assert trail == [
        ("ops", "batch.pause", True),
        ("ops", "batch.priority", True),
        ("ops", "batch.priority", False),
        ("ops", "batch.resume", True),
        ("ops", "batch.cancel", True),
    ]
    # the batch page shows who did what
    page = staff_client.get(f"/batches/{batch.pk}")
    assert b"batch.priority" in page.content and b"refused" in page.content


def test_a_control_without_csrf_is_refused(staff_client, validated_batch):
    batch = validated_batch(lines=1)
    answer = staff_client.post(f"/batches/{batch.pk}/action", {"action": "pause"})
    assert answer.status_code == 403
    assert not Batch.objects.get(pk=batch.pk).paused
    assert not AuditEntry.objects.exists()


def test_replay_a_dead_webhook_from_the_batch_page(staff_client, validated_batch, settings):
    batch = validated_batch(lines=1)
    dead = WebhookDelivery.objects.create(
        batch=batch,
        event_type="batch.completed",
        event_key="batch.completed",
        url="https://hooks.example.com/x",
        payload={},
        status=WebhookDelivery.Status.DEAD,
        attempts=8,
        next_attempt_at=timezone.now(),
        last_error="connection refused",
    )
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}  # no real delivery attempt here
    page = staff_client.get(f"/batches/{batch.pk}")
    assert f"/webhooks/{dead.pk}/replay".encode() in page.content

    answer = _post(staff_client, f"/webhooks/{dead.pk}/replay", next=f"/batches/{batch.pk}")

    assert f"Webhook {dead.pk} is being sent again." in _messages(answer)
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == ("pending", 0)
    assert AuditEntry.objects.get(action="webhook.replay").target == dead.pk
    # a pending message cannot be replayed: the message says so and the audit says refused
    answer = _post(staff_client, f"/webhooks/{dead.pk}/replay")
    assert any("still pending" in m for m in _messages(answer))
    assert not AuditEntry.objects.filter(action="webhook.replay").order_by("-id").first().ok


def test_restart_a_worker_and_reset_stuck_work(staff_client):
    Worker.objects.create(worker_id="gpu-1:10", hostname="gpu-1", pid=10)

    answer = _post(staff_client, "/workers/restart", worker_id="gpu-1:10")
    assert "Engine restart requested for gpu-1:10." in _messages(answer)
    answer = _post(staff_client, "/workers/reset-stuck")
    assert any(m.startswith("Reset stuck work:") for m in _messages(answer))

    actions = set(AuditEntry.objects.values_list("action", "actor"))
    assert actions == {("worker.restart", "ops"), ("work.reset_stuck", "ops")}


def test_admin_actions_pause_and_prioritise_with_audit(staff_client, validated_batch, other_key):
    batch = validated_batch(lines=1, key=other_key[0])
    changelist = "/admin/jobs/batch/"

    _post(staff_client, changelist, action="pause_batches", _selected_action=batch.pk, index=0)
    _post(
        staff_client,
        changelist,
        action="set_priority",
        _selected_action=batch.pk,
        priority="5",
        index=0,
    )

    batch.refresh_from_db()
    assert batch.paused and batch.priority == 5
    assert set(AuditEntry.objects.values_list("action", flat=True)) == {
        "batch.pause",
        "batch.priority",
    }


def test_workers_are_in_the_admin(staff_client):
    Worker.objects.create(worker_id="gpu-2:11", hostname="gpu-2", pid=11)
    page = staff_client.get("/admin/jobs/worker/")
    assert page.status_code == 200 and b"gpu-2:11" in page.content


def test_revoking_a_key_in_the_admin_is_audited(staff_client, other_key):
    _post(
        staff_client,
        "/admin/batchserver/apikey/",
        action="revoke_keys",
        _selected_action=other_key[0].pk,
        index=0,
    )
    entry = AuditEntry.objects.get(action="key.revoke")
    assert (entry.actor, entry.target) == ("ops", other_key[0].prefix)


def test_the_admin_filters_batches_by_endpoint(staff_client, validated_batch):
    batch = validated_batch(lines=1)
    found = staff_client.get("/admin/jobs/batch/", {"endpoint": "/v1/chat/completions"})
    assert found.status_code == 200 and batch.pk.encode() in found.content
    other = staff_client.get("/admin/jobs/batch/", {"endpoint": "/v1/embeddings"})
    assert other.status_code == 200 and batch.pk.encode() not in other.content
