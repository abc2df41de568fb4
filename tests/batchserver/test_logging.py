"""Structured logs: one correlation id from the API request through the batch's tasks and into
the engine host process."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

from batchserver import correlation
from batchserver.logging import CorrelationIdFilter, JsonFormatter, logging_config
from jobs.models import Batch
from jobs.worker.engine.manager import get_engine
from tests.conftest import jsonl, request_line


@pytest.fixture
def json_log():
    """Root-logger records as the production JSON handler writes them, parsed per line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CorrelationIdFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line]

    yield lines
    root.removeHandler(handler)
    root.setLevel(old_level)


def create(client, upload, django_capture_on_commit_callbacks, lines, **headers):
    file = upload(jsonl(lines))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/v1/batches",
            {
                "input_file_id": file["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
            format="json",
            **headers,
        )
    assert response.status_code == 200, response.content
    return response


def test_a_json_line_has_the_fields_and_the_bound_id(json_log):
    with correlation.bind("req-abc"):
        logging.getLogger("jobs.test").info("hello %s", "world", extra={"batch_id": "b1"})
    logging.getLogger("jobs.test").warning("unbound")

    first, second = json_log()[-2:]
    assert first["message"] == "hello world" and first["level"] == "INFO"
    assert first["logger"] == "jobs.test" and first["batch_id"] == "b1"
    assert first["correlation_id"] == "req-abc" and "time" in first and "process" in first
    assert second["correlation_id"] == "-"


def test_log_format_setting():
    assert logging_config("json")["handlers"]["console"]["formatter"] == "json"
    assert logging_config("plain")["handlers"]["console"]["formatter"] == "plain"
    with pytest.raises(ValueError):
        logging_config("xml")


def test_the_request_id_header_becomes_the_batchs_correlation_id(
    client_api, upload, model, django_capture_on_commit_callbacks
):
    given = create(
        client_api,
        upload,
        django_capture_on_commit_callbacks,
        [request_line(1)],
        HTTP_X_REQUEST_ID="client-id-42",
    )
    assert given["X-Request-ID"] == "client-id-42"
    assert Batch.objects.get(pk=given.json()["id"]).correlation_id == "client-id-42"

    generated = create(client_api, upload, django_capture_on_commit_callbacks, [request_line(1)])
    new_id = generated["X-Request-ID"]
    assert len(new_id) == 32
    assert Batch.objects.get(pk=generated.json()["id"]).correlation_id == new_id

    unsafe = client_api.get("/v1/batches", HTTP_X_REQUEST_ID="has spaces; and more")
    assert unsafe["X-Request-ID"] != "has spaces; and more"


def test_the_batchs_task_log_lines_carry_its_correlation_id(
    client_api, upload, model, django_capture_on_commit_callbacks, json_log
):
    # when a batch is created with a request id and its tasks run
    response = create(
        client_api,
        upload,
        django_capture_on_commit_callbacks,
        [request_line(1), request_line(2)],
        HTTP_X_REQUEST_ID="trace-me-7",
    )
    batch_id = response.json()["id"]

    # then every log line about it, from the API request to its last chunk, carries the id
    about = [r for r in json_log() if batch_id in r["message"]]
    messages = [r["message"] for r in about]
    assert any("validated" in m for m in messages)
    assert any(m.startswith(f"batch {batch_id} chunk 0: 2 requests") for m in messages)
    assert {r["correlation_id"] for r in about} == {"trace-me-7"}
    chunk_line = next(r for r in about if "chunk 0" in r["message"])
    assert chunk_line["batch_id"] == batch_id and chunk_line["chunk"] == 0


def test_the_engine_host_logs_with_the_batchs_correlation_id(
    client_api, upload, model, django_capture_on_commit_callbacks, settings, caplog
):
    # given the engine in its own host process (the fake engine behind the real host)
    settings.BATCHSERVER_ENGINE = "fake-hosted"
    caplog.set_level(logging.INFO)
    try:
        create(
            client_api,
            upload,
            django_capture_on_commit_callbacks,
            [request_line(1)],
            HTTP_X_REQUEST_ID="host-trace-9",
        )
    finally:
        get_engine().shutdown()  # waits for the host's last lines

    # then the host process logged the run with the batch's id, relayed into this process
    host_lines = [r for r in caplog.records if getattr(r, "process_kind", "") == "engine"]
    assert host_lines, "the engine host logged nothing"
    running = [r for r in host_lines if r.getMessage() == "engine host: running 1 requests"]
    assert running and running[-1].correlation_id == "host-trace-9"
    assert running[-1].name == "jobs.worker.engine.host"
    assert running[-1].process != os.getpid()
