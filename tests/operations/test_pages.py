"""The console's own pages through Django's test client: staff only, their content, /health."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from batchserver import correlation, live, logstore
from batchserver.models import AuditEntry
from batchserver.operations import samples
from batchserver.operations.models import MetricSample
from jobs.models import Worker
from tests.conftest import csrf_token

PAGES = ["/", "/dashboard", "/settings", "/config", "/logs"]


@pytest.mark.parametrize("url", PAGES)
def test_pages_are_staff_only(db, url):
    answer = Client().get(url)
    assert answer.status_code == 302
    assert answer["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", PAGES)
def test_pages_answer_staff_in_the_console_frame(staff_client, url):
    answer = staff_client.get(url)
    assert answer.status_code == 200
    assert b'class="console-nav"' in answer.content


def test_the_hub_shows_health_the_sdk_snippet_and_every_page(staff_client):
    page = staff_client.get("/").content.decode()
    assert 'base_url="http://testserver/v1"' in page
    for path in ("/queue", "/model-management", "/fine-tuning", "/curation", "/plugins", "/logs"):
        assert f'href="{path}"' in page
    assert 'database: <span class="ops-ok">ok</span>' in page


def test_health_is_200_until_work_waits_with_no_worker(db, validated_batch):
    answer = Client().get("/health")
    assert answer.status_code == 200, answer.json()
    assert set(answer.json()["checks"]) == {"database", "broker", "workers"}

    validated_batch(lines=1)  # work waits, no worker alive
    answer = Client().get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["workers"]["ok"] is False

    Worker.objects.create(worker_id="gpu:1", hostname="gpu", pid=1)
    assert Client().get("/health").status_code == 200


def test_health_is_503_when_the_broker_is_down(db, monkeypatch):
    from django_q.brokers import orm

    def down(self):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(orm.ORM, "queue_size", down)
    answer = Client().get("/health")
    assert answer.status_code == 503
    assert "broker unreachable" in answer.json()["checks"]["broker"]["detail"]


def test_config_masks_secrets_and_names_sources(staff_client, settings, monkeypatch):
    settings.AWS_SECRET_ACCESS_KEY = "do-not-show-me-please-0123456789abcdefghij"
    settings.REDIS_URL = "redis://:hunter2@cache:6379/0"
    monkeypatch.setenv("BATCH_MAX_LINES", "50000")
    live.change("BATCH_CHUNK_SIZE", "128", None)

    page = staff_client.get("/config").content.decode()

    assert "do-not-show-me" not in page and "hunter2" not in page
    assert settings.SECRET_KEY not in page
    assert "Django" in page and "vllm" in page
    row = page.split('id="config-BATCH_CHUNK_SIZE"')[1].split("</tr>")[0]
    assert "128" in row and "database" in row
    row = page.split('id="config-BATCH_MAX_LINES"')[1].split("</tr>")[0]
    assert "environment" in row
    row = page.split('id="config-WEBHOOK_MAX_ATTEMPTS"')[1].split("</tr>")[0]
    assert "default" in row


def test_settings_form_saves_refuses_and_resets(staff_client):
    def post(**data):
        data["csrfmiddlewaretoken"] = csrf_token(staff_client)
        return staff_client.post("/settings/change", data, follow=True)

    answer = post(name="BATCH_LEASE_SECONDS", value="120")
    assert "BATCH_LEASE_SECONDS is now 120." in answer.content.decode()
    assert live.get("BATCH_LEASE_SECONDS") == 120

    answer = post(name="BATCH_LEASE_SECONDS", value="two minutes")
    text = answer.content.decode()
    assert "BATCH_LEASE_SECONDS: must be a whole number. The old value is kept." in text
    assert live.get("BATCH_LEASE_SECONDS") == 120

    post(name="BATCH_LEASE_SECONDS", reset="1")
    assert live.source_of("BATCH_LEASE_SECONDS") == ""
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "setting.change",
        "setting.reset",
    ]


def test_logs_filter_by_level_batch_and_odd_correlation_ids(staff_client, validated_batch):
    batch = validated_batch(lines=1)
    batch.correlation_id = "req-7f3a"  # the API gives each batch its request's id
    batch.save(update_fields=["correlation_id"])
    logstore.discard()
    log = logging.getLogger("jobs.runner")
    with correlation.bind(batch.correlation_id):
        log.warning("chunk <script>alert(1)</script> of %s failed", batch.pk)
    log.info("an unrelated line")
    logstore.flush()

    page = staff_client.get("/logs", {"batch": batch.pk}).content.decode()
    assert "chunk &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "an unrelated line" not in page
    assert (
        "an unrelated line" not in staff_client.get("/logs", {"level": "WARNING"}).content.decode()
    )

    for odd in ["'; DROP TABLE x; --", "%_\\", 'ü🙂<>"', "x" * 300]:
        answer = staff_client.get("/logs", {"correlation_id": odd, "q": odd})
        assert answer.status_code == 200
        assert (
            "No line matches." in answer.content.decode()
            or "Ensure this value" in answer.content.decode()
        )
    assert staff_client.get("/logs?correlation_id=%00").status_code == 400

    # the batch's page shows its own lines
    page = staff_client.get(f"/batches/{batch.pk}").content.decode()
    assert "chunk &lt;script&gt;" in page and "an unrelated line" not in page

    # htmx follow: only the live part
    part = staff_client.get("/logs", {"follow": "on"}, headers={"HX-Request": "true"})
    assert part.content.decode().lstrip().startswith('<div id="log-lines" hx-get=')


def test_dashboard_charts_samples_and_rates(staff_client, validated_batch):
    validated_batch(lines=2)
    first = samples.take_sample()
    MetricSample.objects.filter(pk=first.pk).update(at=timezone.now() - timedelta(minutes=1))
    MetricSample.objects.create(
        requests_completed=first.requests_completed + 120,
        output_tokens=first.output_tokens + 6000,
        queued_batches=1,
        gpus=[
            {"worker": "gpu:1", "index": 0, "utilization_percent": 87, "temperature_celsius": 64}
        ],
    )

    page = staff_client.get("/dashboard").content.decode()

    for chart in (
        "chart-queue",
        "chart-requests",
        "chart-tokens",
        "chart-errors",
        "chart-gpu-utilization_percent",
    ):
        assert f'id="{chart}"' in page
    assert "<svg" in page
    rates = samples.rates(samples.window(1))
    assert rates and abs(rates[0].requests_per_second - 2.0) < 0.1


def test_metrics_stays_prometheus_text_and_links_browsers_to_the_dashboard(db):
    scrape = Client().get("/metrics")
    assert scrape["Content-Type"].startswith("text/plain")
    assert b"batch_queue_depth" in scrape.content

    browser = Client().get("/metrics", headers={"Accept": "text/html,application/xhtml+xml"})
    assert b'href="/dashboard"' in browser.content
    assert browser["Content-Type"].startswith("text/html")


def test_gpu_figures_are_prometheus_series(db):
    Worker.objects.create(
        worker_id="gpu:7",
        hostname="gpu",
        pid=7,
        gpu={"devices": [{"index": 0, "memory_used_bytes": 2048, "temperature_celsius": 61}]},
    )
    text = Client().get("/metrics").content.decode()
    assert 'batch_gpu_temperature_celsius{gpu="0",worker="gpu:7"} 61.0' in text
    assert 'batch_gpu_memory_used_bytes{gpu="0",worker="gpu:7"} 2048.0' in text


def test_the_browsable_api_shows_staff_every_keys_objects_read_only(
    staff_client, validated_batch, other_key, api_key
):
    mine, theirs = validated_batch(lines=1), validated_batch(lines=1, key=other_key[0])

    listed = staff_client.get("/api/browse/batches", headers={"Accept": "application/json"})
    ids = {b["id"]: b["owner"] for b in listed.json()["data"]}
    assert ids == {mine.pk: "test", theirs.pk: "other"}

    html = staff_client.get("/api/browse/batches", headers={"Accept": "text/html"})
    assert b"/static/rest_framework/" in html.content and theirs.pk.encode() in html.content
    one = staff_client.get(
        f"/api/browse/batches/{theirs.pk}", headers={"Accept": "application/json"}
    )
    assert one.json()["owner"] == "other"
    missing = staff_client.get(
        "/api/browse/batches/batch_nope", headers={"Accept": "application/json"}
    )
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "batch_id"

    # read-only, even with CSRF
    refused = staff_client.post(
        "/api/browse/batches", {}, headers={"X-CSRFToken": csrf_token(staff_client)}
    )
    assert refused.status_code == 405
    # an API key does not open it, and an anonymous visitor is not let in
    key_client = Client(headers={"Authorization": f"Bearer {api_key[1]}"})
    assert key_client.get("/api/browse/batches").status_code in (401, 403)
    assert Client().get("/api/browse/").status_code in (401, 403)


def test_the_openapi_docs_link_to_the_browsable_api(db):
    schema = Client().get("/api/schema/", headers={"Accept": "application/json"})
    assert "/api/browse/" in schema.content.decode()


def test_the_grafana_dashboard_only_uses_series_metrics_serves(db, settings):
    import json
    import re
    from pathlib import Path

    Worker.objects.create(
        worker_id="gpu:9",
        hostname="gpu",
        pid=9,
        gpu={
            "devices": [
                {
                    "index": 0,
                    "memory_used_bytes": 1,
                    "memory_total_bytes": 2,
                    "utilization_percent": 3,
                    "temperature_celsius": 4,
                }
            ]
        },
    )
    served = set(re.findall(r"^# TYPE (\w+)", Client().get("/metrics").content.decode(), re.M))
    dashboard = json.loads((Path(settings.BASE_DIR) / "docs/grafana-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(batch_\w+|django_\w+)", target["expr"])
    }
    # histogram and counter samples carry suffixes of their family's name
    families = {re.sub(r"_(bucket|total|count|sum)$", "", name) for name in used}
    missing = {f for f in families if not any(s == f or s.startswith(f) for s in served)}
    assert not missing, missing


def test_the_hub_refreshes_only_its_live_part(staff_client, validated_batch):
    validated_batch(lines=3)
    part = staff_client.get("/", headers={"HX-Request": "true"}).content.decode()
    assert part.lstrip().startswith('<div id="hub-status" hx-get="/"')
    assert "0 queued" in part and "1 running, 3 requests pending" in part
    assert "console-nav" not in part
