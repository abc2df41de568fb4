"""Schemathesis fuzzes every operation of our own OpenAPI schema: no request may cause a 5xx,
and every answer the schema documents must match it (one source per response body).

The schema is read from ``/api/schema/`` of the in-process WSGI application and requests go
through the same application, inside the test's database transaction, authenticated with an API
key that owns a real file and a real batch (so some generated ids hit the code paths of objects
that exist). Examples are bounded and derandomized, so a run is repeatable and short.
"""

from __future__ import annotations

import pytest
from django.core import signals
from django.db import close_old_connections
from django.test import override_settings

pytest.importorskip("schemathesis")

import schemathesis  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    not_a_server_error,
    response_schema_conformance,
)

from batchserver.wsgi import application  # noqa: E402
from tests.conftest import request_line  # noqa: E402

MAX_EXAMPLES = 25


@pytest.fixture
def fuzz_key(api_key, create_batch, settings):
    """The key the fuzzer uses, with a finished batch (output and error files) of its own."""
    settings.API_THROTTLE_RATE = "off"  # the fuzzer is fast; 429s would hide the real answers
    create_batch([request_line(1), request_line(2, content="[[fail]]")])
    return api_key[1]


def load_schema():
    """Our schema as ``/api/schema/`` serves it, read once when the tests are collected.

    Loaded eagerly (``from_fixture`` does not work with pytest 9): no database exists yet, so
    throttling, the schema view's only database use, is off for this one request.
    """
    with override_settings(API_THROTTLE_RATE="off"):
        return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


schema = load_schema()


@pytest.fixture
def in_process_requests():
    # Django's own test client does this too: a request's start and end must not close the
    # connection that holds the test's transaction.
    for signal in (signals.request_started, signals.request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (signals.request_started, signals.request_finished):
        signal.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_no_server_error_and_matches_the_schema(
    case, fuzz_key, in_process_requests
):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {fuzz_key}"},
        checks=[not_a_server_error, response_schema_conformance],
    )


# --- Regressions: NUL characters (PostgreSQL refuses them in text and jsonb: these were 500s) --


@pytest.mark.parametrize(
    "path",
    [
        "/v1/files/file-a%00b",
        "/v1/files/file-a%00b/content",
        "/v1/batches/batch_a%00b",
        "/v1/batches/batch_a%00b/partial_output",
        "/v1/files?after=file-%00",
        "/v1/files?purpose=batch%00",
        "/v1/batches?after=batch_%00",
        "/v1/models/fake%00model",
    ],
)
def test_a_nul_in_the_url_is_400(client_api, path):
    response = client_api.get(path)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "null_characters_not_allowed"


@pytest.mark.parametrize("metadata", [{"k": "a\x00b"}, {"k\x00": "v"}])
def test_a_nul_in_metadata_is_400(client_api, upload, model, metadata):
    file = upload(b"{}\n")
    response = client_api.post(
        "/v1/batches",
        {
            "input_file_id": file["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "metadata": metadata,
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("metadata", "null_characters_not_allowed")


def test_a_nul_in_an_input_line_fails_the_batch_with_its_line(create_batch):
    batch = create_batch([request_line(1), request_line(2, content="x\x00y")])

    assert batch["status"] == "failed"
    [error] = batch["errors"]["data"]
    assert (error["code"], error["line"]) == ("invalid_json_line", 2)
