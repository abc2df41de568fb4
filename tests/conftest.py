"""Shared fixtures: API keys, an authenticated client, registered models, input files."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from batchserver import live
from batchserver.models import ApiKey
from jobs.models import Batch
from jobs.services import lifecycle
from models_registry.services import register_model

FAKE_MODEL = "fake-model"


@pytest.fixture(autouse=True)
def _media_root(tmp_path, settings):
    settings.MEDIA_ROOT = str(tmp_path / "files")
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)


@pytest.fixture
def api_key(db) -> tuple[ApiKey, str]:
    return ApiKey.issue("test")


@pytest.fixture
def other_key(db) -> tuple[ApiKey, str]:
    return ApiKey.issue("other")


def make_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@pytest.fixture
def client_api(api_key) -> APIClient:
    return make_client(api_key[1])


@pytest.fixture
def other_client(other_key) -> APIClient:
    return make_client(other_key[1])


@pytest.fixture
def model(db):
    return register_model(FAKE_MODEL)


def request_line(
    i: int,
    *,
    url: str = "/v1/chat/completions",
    model: str = FAKE_MODEL,
    content: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """One well-formed batch input line; keyword arguments replace top-level keys."""
    line = {
        "custom_id": f"req-{i}",
        "method": "POST",
        "url": url,
        "body": {
            "model": model,
            "messages": [{"role": "user", "content": content or f"question {i}"}],
        },
    }
    line.update(overrides)
    return line


def jsonl(lines: list[dict[str, Any] | str]) -> bytes:
    return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines).encode()


@pytest.fixture
def upload(client_api) -> Callable[..., dict[str, Any]]:
    """Upload bytes as a file; returns the response JSON (asserting success unless told not to)."""

    def _upload(
        content: bytes,
        *,
        purpose: str = "batch",
        filename: str = "input.jsonl",
        client: APIClient | None = None,
        expect: int = 200,
    ) -> dict[str, Any]:
        buffer = io.BytesIO(content)
        buffer.name = filename
        response = (client or client_api).post(
            "/v1/files", {"file": buffer, "purpose": purpose}, format="multipart"
        )
        assert response.status_code == expect, response.content
        return response.json()

    return _upload


@pytest.fixture
def create_batch(
    client_api, upload, model, django_capture_on_commit_callbacks
) -> Callable[..., dict[str, Any]]:
    """Upload lines and create a batch over them; its tasks run inline before this returns.

    Tasks are enqueued on commit; with Q_CLUSTER sync they run as soon as the commit callbacks
    run, which ``django_capture_on_commit_callbacks(execute=True)`` does inside the test's
    transaction.
    """

    def _create(
        lines: list[dict[str, Any] | str] | bytes,
        *,
        endpoint: str = "/v1/chat/completions",
        **extra: Any,
    ) -> dict[str, Any]:
        content = lines if isinstance(lines, bytes) else jsonl(lines)
        file = upload(content)
        with django_capture_on_commit_callbacks(execute=True):
            response = client_api.post(
                "/v1/batches",
                {
                    "input_file_id": file["id"],
                    "endpoint": endpoint,
                    "completion_window": "24h",
                    **extra,
                },
                format="json",
            )
        assert response.status_code == 200, response.content
        return client_api.get(f"/v1/batches/{response.json()['id']}").json()

    return _create


@pytest.fixture(autouse=True)
def _fresh_live_settings():
    """Each test reads the settings changed on /settings afresh (its rows roll back)."""
    live.forget()
    yield
    live.forget()


@pytest.fixture(autouse=True)
def _inline_tasks(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    assert settings.BATCHSERVER_ENGINE in ("fake", "vllm", "fake-hosted")


@pytest.fixture
def validated_batch(api_key, upload, model, settings):
    """The one factory of a batch that is validated and split into chunks, none of them run.

    ``validated_batch(lines=2, *, chunk_size=None, model_name=, priority=, age=, key=,
    metadata=)``: ``lines`` is a count of well-formed lines or the lines themselves; ``age``
    seconds back-dates its creation; ``key`` owns it (the test key by default).
    """
    register_model("other-model")

    def _validated(
        lines: int | list[dict[str, Any] | str] = 2,
        *,
        chunk_size: int | None = None,
        model_name: str = FAKE_MODEL,
        priority: int = 0,
        age: float = 0,
        key: ApiKey | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Batch:
        if chunk_size is not None:
            settings.BATCH_CHUNK_SIZE = chunk_size
        if isinstance(lines, int):
            lines = [request_line(i, model=model_name) for i in range(lines)]
        file = upload(jsonl(lines))
        batch = Batch.objects.create(
            owner=key or api_key[0],
            input_file_id=file["id"],
            endpoint="/v1/chat/completions",
            completion_window="24h",
            expires_at=timezone.now() + timedelta(hours=24),
            created_at=timezone.now() - timedelta(seconds=age),
            priority=priority,
            metadata=metadata,
        )
        lifecycle.validate_and_split(batch)
        batch.refresh_from_db()
        assert batch.status == "in_progress", batch.errors
        return batch

    return _validated


@pytest.fixture
def staff_user(db) -> User:
    return User.objects.create_superuser("ops", "ops@example.com", "a-long-password-123")


@pytest.fixture
def staff_client(staff_user) -> Client:
    """A logged-in staff browser session that checks CSRF like a real browser does.

    Post forms with ``data={..., "csrfmiddlewaretoken": csrf_token(staff_client)}`` and JSON
    with ``headers={"X-CSRFToken": csrf_token(staff_client)}``.
    """
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    client.get("/admin/")  # sets the CSRF cookie
    return client


def csrf_token(client: Client) -> str:
    return client.cookies["csrftoken"].value
