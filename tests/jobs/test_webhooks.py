"""Webhooks: terminal and progress events, signatures, retries on a schedule, dead letters, replay.

A real HTTP receiver on 127.0.0.1 (allowed by WEBHOOK_ALLOW_PRIVATE for these tests) verifies
every signature with the ``standardwebhooks`` library. Retry delays are shrunk to fractions of a
second and driven by django-q2's own scheduler, which runs the one-off schedules inline.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone
from django_q.models import Schedule
from django_q.scheduler import scheduler
from standardwebhooks.webhooks import Webhook

from batchserver.models import ApiKey
from jobs import runner, tasks, webhooks
from jobs.models import Batch, WebhookDelivery
from jobs.services import batches as batch_services
from tests.conftest import jsonl, request_line

D = WebhookDelivery.Status


class Receiver:
    """A webhook endpoint on 127.0.0.1 that verifies every request and follows a script.

    Until ``listen()`` its port is bound but not listening, so connections are refused. Each
    request takes the next scripted behaviour ("503", "hang"), then answers 200.
    """

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.script: list[str] = []
        self.received: list[dict] = []
        self.release = threading.Event()
        self.server: ThreadingHTTPServer | None = None

    def listen(self, *script: str) -> None:
        self.script = list(script)
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler(), False)
        server.daemon_threads = True
        server.socket.close()
        server.socket = self.sock
        server.server_activate()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.server = server

    def close(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        else:
            self.sock.close()

    def events(self) -> list[tuple[str, str]]:
        return [(r["payload"]["type"], r["payload"]["data"]["id"]) for r in self.received]

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    payload = Webhook(receiver.secret).verify(body, headers)
                    verified = True
                except Exception as exc:  # recorded, and the test fails on it
                    payload, verified = {"error": repr(exc)}, False
                receiver.received.append(
                    {"headers": headers, "payload": payload, "verified": verified}
                )
                behaviour = receiver.script.pop(0) if receiver.script else "ok"
                if behaviour == "hang":
                    receiver.release.wait(10)
                    return
                self.send_response(503 if behaviour == "503" else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def secret(api_key) -> str:
    return ApiKey.objects.get(pk=api_key[0].pk).webhook_secret


@pytest.fixture
def receiver(secret):
    r = Receiver(secret)
    yield r
    r.close()


@pytest.fixture(autouse=True)
def fast_webhooks(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    settings.WEBHOOK_RETRY_INITIAL_SECONDS = 0.2
    settings.WEBHOOK_RETRY_EXP_BASE = 2
    settings.WEBHOOK_RETRY_MAX_SECONDS = 5
    settings.WEBHOOK_RETRY_JITTER_SECONDS = 0.05


def run_schedules(delivery_id: str, limit: float = 15) -> WebhookDelivery:
    """Run django-q2's scheduler (tasks inline) until the message is delivered or dead."""
    Schedule.objects.exclude(func=webhooks.DELIVER_TASK).delete()  # only ours, in this test
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
        if delivery.status != D.PENDING:
            return delivery
        scheduler()
        time.sleep(0.02)
    raise AssertionError(f"{delivery_id} still pending after {limit} s")


def attempt_times(delivery: WebhookDelivery) -> list[datetime]:
    return [datetime.fromisoformat(entry["at"]) for entry in delivery.history]


# --- Retries, dead letter, replay -------------------------------------------------------------


@pytest.fixture
def scheduled(monkeypatch) -> list[tuple[int, datetime, datetime]]:
    """Each retry the worker schedules: (failed attempt, when it ended, when the next is due)."""
    planned: list[tuple[int, datetime, datetime]] = []
    original = webhooks._schedule_attempt

    def record(delivery, when):
        ended = WebhookDelivery.objects.get(pk=delivery.pk).history[-1]
        planned.append((delivery.attempts, datetime.fromisoformat(ended["at"]), when))
        original(delivery, when)

    monkeypatch.setattr(webhooks, "_schedule_attempt", record)
    return planned


def test_retries_follow_the_schedule_then_dead_letter_then_replay_with_the_same_id(
    client_api,
    other_client,
    create_batch,
    receiver,
    scheduled,
    django_capture_on_commit_callbacks,
):
    # given a batch whose receiver is down (its port refuses connections)
    batch = create_batch([request_line(1)], webhook_url=receiver.url)
    assert batch["status"] == "completed"
    delivery = WebhookDelivery.objects.get(batch_id=batch["id"])
    assert delivery.event_type == "batch.completed"
    assert delivery.attempts == 1 and "refused" in delivery.last_error.lower()

    # when it comes up answering 503, then hangs past the timeout
    receiver.listen("503", "hang")
    dead = run_schedules(delivery.id)

    # then the attempts followed the back-off schedule, and the last one left a dead letter
    assert (dead.status, dead.attempts) == (D.DEAD, 3)
    assert dead.dead_at is not None
    errors = [entry["error"] for entry in dead.history]
    assert "refused" in errors[0].lower()
    assert errors[1].startswith("HTTP 503") and dead.history[1]["status_code"] == 503
    assert errors[2].startswith("timed out")
    # (the recorded schedule is checked, not wall-clock gaps: a busy machine only delays)
    assert [n for n, _, _ in scheduled] == [1, 2]
    times = attempt_times(dead)
    for n, started, due in scheduled:
        delay = (due - started).total_seconds()
        low = 0.2 * 2 ** (n - 1)
        sending = 0.5 + 0.05  # the attempt itself took up to its timeout, plus some margin
        assert low <= delay <= low + 0.05 + sending, (n, delay)
        assert times[n] >= due  # the next attempt never came early
    assert not Schedule.objects.filter(func=webhooks.DELIVER_TASK).exists()

    # and the dead letter is listed for its key, and for its key only
    listed = client_api.get("/v1/webhooks/deliveries?status=dead").json()
    assert [d["id"] for d in listed["data"]] == [dead.id]
    assert listed["data"][0]["status"] == "dead" and listed["data"][0]["attempts"] == 3
    assert other_client.get("/v1/webhooks/deliveries?status=dead").json()["data"] == []
    refused = other_client.post(f"/v1/webhooks/deliveries/{dead.id}/replay")
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"

    # when the receiver has recovered and the dead letter is replayed
    with django_capture_on_commit_callbacks(execute=True):
        response = client_api.post(f"/v1/webhooks/deliveries/{dead.id}/replay")
    assert response.status_code == 200, response.content

    # then it is delivered with the same webhook-id; every request carried a valid signature
    replayed = WebhookDelivery.objects.get(pk=dead.id)
    assert (replayed.status, replayed.attempts, replayed.last_status_code) == (D.DELIVERED, 1, 200)
    assert [r["verified"] for r in receiver.received] == [True, True, True]
    assert {r["headers"]["webhook-id"] for r in receiver.received} == {dead.id}
    assert receiver.events() == [("batch.completed", batch["id"])] * 3
    assert receiver.received[-1]["payload"]["data"]["status"] == "completed"
    stamps = [int(r["headers"]["webhook-timestamp"]) for r in receiver.received]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 60


def test_a_retry_that_succeeds_ends_delivered(create_batch, receiver):
    receiver.listen("503")
    batch = create_batch([request_line(1)], webhook_url=receiver.url)
    delivered = run_schedules(WebhookDelivery.objects.get(batch_id=batch["id"]).id)
    assert (delivered.status, delivered.attempts) == (D.DELIVERED, 2)
    assert delivered.delivered_at is not None
    assert all(r["verified"] for r in receiver.received) and len(receiver.received) == 2


def test_the_overdue_sweep_sends_a_message_whose_schedule_was_lost(create_batch, receiver):
    batch = create_batch([request_line(1)], webhook_url=receiver.url)  # refused: not listening
    delivery = WebhookDelivery.objects.get(batch_id=batch["id"])
    Schedule.objects.filter(func=webhooks.DELIVER_TASK).delete()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=5)
    )
    receiver.listen()
    assert tasks.deliver_overdue_webhooks() == 1
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == D.DELIVERED


def test_a_refused_address_is_a_dead_letter_at_once(create_batch, api_key, settings):
    # given a key default that points at loopback, on a server that does not allow it
    settings.WEBHOOK_ALLOW_PRIVATE = False
    ApiKey.objects.filter(pk=api_key[0].pk).update(webhook_url="http://127.0.0.1:9/hook")
    batch = create_batch([request_line(1)])
    delivery = WebhookDelivery.objects.get(batch_id=batch["id"])
    assert (delivery.status, delivery.attempts) == (D.DEAD, 1)
    assert "loopback" in delivery.last_error


# --- Events ---------------------------------------------------------------------------------


def test_completed_and_failed_batches_send_their_event(create_batch, receiver, api_key):
    receiver.listen()
    # the first names its URL; the second relies on the key's default
    done = create_batch([request_line(1)], webhook_url=receiver.url)
    ApiKey.objects.filter(pk=api_key[0].pk).update(webhook_url=receiver.url)
    failed = create_batch(["not json"])
    assert failed["status"] == "failed"
    assert receiver.events() == [("batch.completed", done["id"]), ("batch.failed", failed["id"])]
    assert receiver.received[1]["payload"]["data"]["errors"]["data"]
    assert all(r["verified"] for r in receiver.received)


@pytest.fixture
def started(api_key, upload, model, settings):
    """A validated batch whose chunks (of one line each) have not run."""
    settings.BATCH_CHUNK_SIZE = 1
    settings.BATCH_TASK_SLICE_SECONDS = 0

    def _started(count: int, **extra) -> Batch:
        file = upload(jsonl([request_line(i) for i in range(1, count + 1)]))
        batch = batch_services.create_batch(
            api_key[0],
            input_file_id=file["id"],
            endpoint="/v1/chat/completions",
            completion_window="24h",
            **extra,
        )
        tasks.validate_batch(batch.id)
        return Batch.objects.get(pk=batch.pk)

    return _started


def test_cancelled_and_expired_batches_send_their_event(
    client_api, started, receiver, django_capture_on_commit_callbacks
):
    receiver.listen()
    cancelled = started(2, webhook_url=receiver.url)
    expiring = started(2, webhook_url=receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        assert client_api.post(f"/v1/batches/{cancelled.id}/cancel").status_code == 200
    Batch.objects.filter(pk=expiring.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.tick()
    assert receiver.events() == [
        ("batch.cancelled", cancelled.id),
        ("batch.expired", expiring.id),
    ]
    assert [r["payload"]["data"]["status"] for r in receiver.received] == ["cancelled", "expired"]
    assert all(r["verified"] for r in receiver.received)


@pytest.mark.parametrize("via", ["param", "metadata"])
def test_progress_events_every_n_percent(
    via, started, receiver, django_capture_on_commit_callbacks
):
    # given a batch of five one-line chunks that wants progress every 50 %
    receiver.listen()
    extra = (
        {"webhook_progress_percent": 50}
        if via == "param"
        else {"metadata": {"webhook_progress_percent": "50"}}
    )
    batch = started(5, webhook_url=receiver.url, **extra)
    # when its chunks commit one by one
    for _ in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            chunk = runner.claim_chunk("test-worker", None)
            runner.run_chunk(chunk)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.settle_batch(batch.id)
    # then progress is reported at 60 % (the 50 % step) and 100 %, then the completion
    assert [t for t, _ in receiver.events()] == [
        "batch.progress",
        "batch.progress",
        "batch.completed",
    ]
    counts = [r["payload"]["data"]["request_counts"]["completed"] for r in receiver.received]
    assert counts == [3, 5, 5]


# --- Creating, keys, admin --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://10.0.0.7/hook",
        "ftp://93.184.215.14/hook",
    ],
)
def test_create_refuses_a_webhook_url_the_server_must_not_call(client_api, upload, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    file = upload(jsonl([request_line(1)]))
    response = client_api.post(
        "/v1/batches",
        {
            "input_file_id": file["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "webhook_url": url,
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "webhook_url"
    assert not Batch.objects.exists()


def test_each_key_gets_its_own_standard_webhooks_secret(db):
    first, _ = ApiKey.issue("a")
    second, _ = ApiKey.issue("b")
    for key in (first, second):
        assert key.webhook_secret.startswith("whsec_")
        assert len(base64.b64decode(key.webhook_secret.removeprefix("whsec_"))) == 24
    assert first.webhook_secret != second.webhook_secret


def test_pending_messages_cannot_be_replayed(client_api, create_batch, receiver):
    batch = create_batch([request_line(1)], webhook_url=receiver.url)  # refused, retry pending
    delivery = WebhookDelivery.objects.get(batch_id=batch["id"])
    response = client_api.post(f"/v1/webhooks/deliveries/{delivery.id}/replay")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "webhook_delivery_pending"
    detail = client_api.get(f"/v1/webhooks/deliveries/{delivery.id}").json()
    assert detail["status"] == "pending" and detail["next_attempt_at"] is not None
    bad = client_api.get("/v1/webhooks/deliveries?status=lost")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"


def test_admin_lists_dead_letters_and_replays_them(
    admin_client, create_batch, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    batch = create_batch([request_line(1)], webhook_url=receiver.url)  # refused: dead at once
    dead = WebhookDelivery.objects.get(batch_id=batch["id"])
    assert dead.status == D.DEAD
    page = admin_client.get("/admin/jobs/webhookdelivery/?status__exact=dead")
    assert page.status_code == 200 and dead.id in page.content.decode()

    receiver.listen()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/jobs/webhookdelivery/",
            {"action": "replay_deliveries", "_selected_action": [dead.id]},
        )
    assert WebhookDelivery.objects.get(pk=dead.id).status == D.DELIVERED
    assert receiver.received[0]["headers"]["webhook-id"] == dead.id
    assert receiver.received[0]["verified"]


def test_admin_key_form_checks_the_default_url_and_shows_the_secret(admin_client, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    refused = admin_client.post(
        "/admin/batchserver/apikey/add/",
        {"name": "team", "webhook_url": "http://169.254.169.254/latest/"},
    )
    assert refused.status_code == 200 and "cloud metadata" in refused.content.decode()
    assert not ApiKey.objects.filter(name="team").exists()

    created = admin_client.post(
        "/admin/batchserver/apikey/add/",
        {"name": "team", "webhook_url": "https://93.184.215.14/hook"},
    )
    assert created.status_code == 302
    key = ApiKey.objects.get(name="team")
    assert key.webhook_url == "https://93.184.215.14/hook"
    page = admin_client.get(f"/admin/batchserver/apikey/{key.pk}/change/").content.decode()
    assert key.webhook_secret in page
