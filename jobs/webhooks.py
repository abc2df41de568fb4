"""Webhooks about batches: create messages from lifecycle signals, deliver, retry, replay.

Messages follow the Standard Webhooks spec (https://www.standardwebhooks.com): a JSON body
``{"type", "timestamp", "data"}`` whose ``data`` is the batch object, and the headers
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (HMAC-SHA256 over
``id.timestamp.body`` with the owner key's ``whsec_`` secret, computed by the
``standardwebhooks`` library).

Delivery only ever runs in django-q2 tasks. A failed attempt sets ``next_attempt_at`` (exponential
back-off with jitter, from tenacity's wait functions) and creates a one-off django-q2 schedule
for it; a periodic sweep picks up anything a lost schedule left behind. After
``WEBHOOK_MAX_ATTEMPTS`` the message is a dead letter, listed and replayable through the API and
the admin.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, schedule
from standardwebhooks.webhooks import Webhook

from batchserver import live, net
from batchserver.backoff import backoff_delay
from batchserver.errors import Conflict
from jobs.models import Batch, WebhookDelivery, WebhookSubscription

logger = logging.getLogger(__name__)
D = WebhookDelivery.Status
TERMINAL_EVENTS = {
    Batch.Status.COMPLETED: WebhookDelivery.Event.COMPLETED,
    Batch.Status.FAILED: WebhookDelivery.Event.FAILED,
    Batch.Status.CANCELLED: WebhookDelivery.Event.CANCELLED,
    Batch.Status.EXPIRED: WebhookDelivery.Event.EXPIRED,
}
PROGRESS_METADATA_KEY = "webhook_progress_percent"
DELIVER_TASK = "jobs.tasks.deliver_webhook"
# A pending message this far past its time has lost its one-off schedule: the sweep sends it.
# (django-q2's scheduler looks at schedules about every 30 s.)
SWEEP_GRACE = timedelta(seconds=60)
MAX_HISTORY = 50
USER_AGENT = "batchserver-webhooks/1"


# --- URLs ---------------------------------------------------------------------------------


def webhook_url_for(batch: Batch) -> str:
    """The batch's own webhook URL, else its key's default, else the server's (/settings)."""
    return batch.webhook_url or batch.owner.webhook_url or live.get("DEFAULT_WEBHOOK_URL")


def progress_step(batch: Batch) -> int | None:
    """Every how many percent the batch wants ``batch.progress`` (extension param or metadata)."""
    subscription = WebhookSubscription.objects.filter(batch=batch).first()
    if subscription is not None:
        return subscription.progress_percent
    raw = (batch.metadata or {}).get(PROGRESS_METADATA_KEY)
    try:
        step = int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
    return step if step is not None and 1 <= step <= 100 else None


# --- Creating messages --------------------------------------------------------------------


def payload_for(batch: Batch, event_type: str) -> dict[str, Any]:
    timestamp = timezone.now().isoformat().replace("+00:00", "Z")
    return {"type": event_type, "timestamp": timestamp, "data": batch.as_openai()}


def enqueue_event(batch: Batch, event_type: str, key: str | None = None) -> WebhookDelivery | None:
    """Create the message for an event (once per ``key``) and deliver it after commit."""
    url = webhook_url_for(batch)
    if not url:
        return None
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                batch=batch,
                event_type=event_type,
                event_key=key or event_type,
                url=url,
                payload=payload_for(batch, event_type),
                next_attempt_at=timezone.now(),
            )
    except IntegrityError:
        return None  # this event already has its message
    transaction.on_commit(lambda: async_task(DELIVER_TASK, delivery.id))
    return delivery


def on_status_changed(sender, batch_id: str, old: str, new: str, **kwargs: Any) -> None:
    """Signal receiver: a batch that reached a terminal status gets its event."""
    if new not in TERMINAL_EVENTS:
        return
    try:
        batch = Batch.objects.select_related("owner").filter(pk=batch_id).first()
        if batch is not None:
            enqueue_event(batch, TERMINAL_EVENTS[new])
    except Exception:  # a webhook problem must never break the batch's own work
        logger.exception("could not create the %s webhook of %s", new, batch_id)


def on_chunk_committed(sender, batch_id: str, **kwargs: Any) -> None:
    """Signal receiver: send ``batch.progress`` when another step of N percent is done."""
    try:
        batch = Batch.objects.select_related("owner").filter(pk=batch_id).first()
        if batch is None or not batch.request_total or not webhook_url_for(batch):
            return
        step = progress_step(batch)
        if not step:
            return
        done = batch.request_completed + batch.request_failed
        reached = done * 100 // batch.request_total // step * step
        if reached >= step:
            event = WebhookDelivery.Event.PROGRESS
            enqueue_event(batch, event, key=f"{event}:{reached}")
    except Exception:
        logger.exception("could not create the progress webhook of %s", batch_id)


# --- Delivering ---------------------------------------------------------------------------


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based), jitter included."""
    return backoff_delay(
        attempt,
        initial=settings.WEBHOOK_RETRY_INITIAL_SECONDS,
        maximum=settings.WEBHOOK_RETRY_MAX_SECONDS,
        exp_base=settings.WEBHOOK_RETRY_EXP_BASE,
        jitter=settings.WEBHOOK_RETRY_JITTER_SECONDS,
    )


def signed_headers(delivery: WebhookDelivery, body: str) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed now with the owner key's secret."""
    now = timezone.now()
    signature = Webhook(delivery.batch.owner.webhook_secret).sign(delivery.id, now, body)
    return {
        "webhook-id": delivery.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def _claim(delivery_id: str) -> WebhookDelivery | None:
    """Take the message for one attempt if it is due; a second task gets None."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * 4 + 60)
    claimed = (
        WebhookDelivery.objects.due(now)
        .filter(pk=delivery_id)
        .update(attempts=F("attempts") + 1, next_attempt_at=lease)
    )
    if not claimed:
        return None
    return WebhookDelivery.objects.select_related("batch__owner").get(pk=delivery_id)


def _send(delivery: WebhookDelivery) -> tuple[int | None, str, bool]:
    """One attempt: (status code, error, retryable). An empty error means delivered."""
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)
    try:
        target = net.check_url(delivery.url)
    except net.ResolveError as exc:
        return None, str(exc), True
    except net.UnsafeURL as exc:
        return None, f"refused: {exc}", False  # retrying cannot make the address allowed
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    try:
        code, snippet = net.post_pinned(
            target, body.encode(), signed_headers(delivery, body), timeout
        )
    except httpx.TimeoutException as exc:
        return None, f"timed out after {timeout:g} s ({type(exc).__name__})", True
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}", True
    if 200 <= code < 300:
        return code, "", False
    text = snippet.decode("utf-8", "replace").strip()
    return code, f"HTTP {code}" + (f": {text}" if text else ""), True


def deliver(delivery_id: str) -> str | None:
    """Make one attempt at a due message and record it: delivered, retry later, or dead."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    started = timezone.now()
    clock = time.monotonic()
    code, error, retryable = _send(delivery)
    entry = {
        "attempt": delivery.attempts,
        "at": started.isoformat(),
        "duration_ms": round((time.monotonic() - clock) * 1000),
        "status_code": code,
        "error": error or None,
    }
    now = timezone.now()
    fields: dict[str, Any] = {
        "last_status_code": code,
        "last_error": error,
        "history": [*delivery.history, entry][-MAX_HISTORY:],
        "next_attempt_at": None,
    }
    if not error:
        fields.update(status=D.DELIVERED, delivered_at=now)
    elif not retryable or delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        fields.update(status=D.DEAD, dead_at=now)
    else:
        fields["next_attempt_at"] = now + timedelta(seconds=retry_delay(delivery.attempts))
    # Written only if no later attempt took the message over (its lease ran out meanwhile).
    mine = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=D.PENDING, attempts=delivery.attempts
    )
    if mine.update(**fields) and fields["next_attempt_at"] is not None:
        _schedule_attempt(delivery, fields["next_attempt_at"])
    return fields.get("status", D.PENDING)


def _schedule_attempt(delivery: WebhookDelivery, when) -> None:
    schedule(
        DELIVER_TASK,
        delivery.id,
        # Unique: django-q2 refuses a duplicate name, and a stale schedule of an earlier
        # round (before a replay) may still exist.
        name=f"webhook {delivery.id} attempt {delivery.attempts + 1} at {when:%H:%M:%S.%f}",
        schedule_type=Schedule.ONCE,
        next_run=when,
    )


def deliver_overdue() -> int:
    """Enqueue every pending message whose attempt is overdue (its schedule was lost)."""
    ids = list(
        WebhookDelivery.objects.due(timezone.now() - SWEEP_GRACE).values_list("id", flat=True)
    )
    for delivery_id in ids:
        async_task(DELIVER_TASK, delivery_id)
    return len(ids)


# --- Replay -------------------------------------------------------------------------------


@transaction.atomic
def replay(delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a dead (or delivered) message again: same webhook-id, fresh signature and attempts.

    It goes to the batch's current webhook URL, so a dead letter caused by a wrong key default
    can be replayed once the default is fixed.
    """
    url = webhook_url_for(delivery.batch) or delivery.url
    updated = WebhookDelivery.objects.filter(
        pk=delivery.pk, status__in=(D.DEAD, D.DELIVERED)
    ).update(
        status=D.PENDING,
        url=url,
        attempts=0,
        next_attempt_at=timezone.now(),
        dead_at=None,
        delivered_at=None,
    )
    if not updated:
        raise Conflict(
            f"Webhook delivery {delivery.id} is still pending; it cannot be replayed yet.",
            param="delivery_id",
            code="webhook_delivery_pending",
        )
    delivery_id = delivery.id
    transaction.on_commit(lambda: async_task(DELIVER_TASK, delivery_id))
    delivery.refresh_from_db()
    return delivery
