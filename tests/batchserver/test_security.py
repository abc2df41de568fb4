"""Security: per-key throttling, revoked and expired keys, deploy checks, CSRF, uploads as data."""

import io
import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from batchserver.models import ApiKey
from jobs.models import File
from tests.conftest import make_client, request_line

ROOT = Path(django_settings.BASE_DIR)


def assert_envelope(response, status, code, type_="invalid_request_error"):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["type"]) == (code, type_), error


# --- Throttling -----------------------------------------------------------------------------


def test_a_key_over_its_rate_gets_429_with_retry_after(client_api, other_client, settings):
    # given a rate of three requests a minute per key
    settings.API_THROTTLE_RATE = "3/min"

    # when one key makes four requests
    answers = [client_api.get("/v1/batches") for _ in range(4)]

    # then the fourth is refused in the OpenAI envelope with a Retry-After header
    assert [r.status_code for r in answers[:3]] == [200, 200, 200]
    assert_envelope(answers[3], 429, "rate_limit_exceeded", "rate_limit_error")
    assert 0 < int(answers[3]["Retry-After"]) <= 60
    # and another key is not affected
    assert other_client.get("/v1/batches").status_code == 200


def test_the_rate_counts_per_key_whatever_the_address(api_key, settings):
    settings.API_THROTTLE_RATE = "2/min"
    statuses = [
        make_client(api_key[1]).get("/v1/files", REMOTE_ADDR=f"10.0.0.{i}").status_code
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_every_api_endpoint_is_throttled(client_api, settings):
    settings.API_THROTTLE_RATE = "1/min"
    assert client_api.get("/v1/models").status_code == 200
    assert client_api.post("/v1/batches", {}, format="json").status_code == 429
    assert client_api.get("/v1/files/file-x/content").status_code == 429


def test_throttling_can_be_switched_off(client_api, settings):
    settings.API_THROTTLE_RATE = "off"
    assert {client_api.get("/v1/batches").status_code for _ in range(20)} == {200}


def test_the_default_rate_is_600_a_minute(tmp_path):
    # read in a fresh process whose environment does not set it
    env = {k: v for k, v in os.environ.items() if k != "API_THROTTLE_RATE"}
    env.update(BATCHSERVER_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="batchserver.settings")
    code = "from django.conf import settings; print(settings.API_THROTTLE_RATE)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "600/min"


# --- API keys -------------------------------------------------------------------------------


def test_a_revoked_key_is_401(api_key, client_api):
    key, _ = api_key
    assert client_api.get("/v1/files").status_code == 200

    key.revoke()

    response = client_api.get("/v1/files")
    assert_envelope(response, 401, "invalid_api_key")
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_found_key_is_remembered_briefly_without_a_query(
    api_key, client_api, settings, django_assert_num_queries, monkeypatch
):
    # given keys remembered for 5 s, and a key just used
    settings.API_KEY_CACHE_SECONDS = 5
    key, raw = api_key
    assert ApiKey.find(raw, max_age=5) == key

    # then within 5 s it is found without a query ...
    with django_assert_num_queries(0):
        assert ApiKey.find(raw, max_age=5) == key

    # ... a revocation made by another process is honoured once they pass ...
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    assert ApiKey.find(raw, max_age=5) == key
    clock = time.monotonic() + 6
    monkeypatch.setattr("batchserver.models.time.monotonic", lambda: clock)
    assert_envelope(client_api.get("/v1/files"), 401, "invalid_api_key")


def test_a_key_revoked_in_this_process_is_refused_at_once(api_key, client_api, settings):
    settings.API_KEY_CACHE_SECONDS = 60
    key, _ = api_key
    assert client_api.get("/v1/files").status_code == 200

    key.revoke()

    assert_envelope(client_api.get("/v1/files"), 401, "invalid_api_key")


def test_a_remembered_key_still_expires_on_time(db, settings, monkeypatch):
    settings.API_KEY_CACHE_SECONDS = 60
    _, raw = ApiKey.issue("soon", expires_at=timezone.now() + timedelta(seconds=30))
    assert make_client(raw).get("/v1/files").status_code == 200

    later = timezone.now() + timedelta(seconds=31)
    monkeypatch.setattr("batchserver.models.timezone.now", lambda: later)

    assert_envelope(make_client(raw).get("/v1/files"), 401, "invalid_api_key")


def test_an_expired_key_is_401(db):
    _, raw = ApiKey.issue("short-lived", expires_at=timezone.now() - timedelta(seconds=1))
    assert_envelope(make_client(raw).get("/v1/batches"), 401, "invalid_api_key")


def test_a_key_with_a_future_expiry_works(db):
    _, raw = ApiKey.issue("long-lived", expires_at=timezone.now() + timedelta(days=1))
    assert make_client(raw).get("/v1/batches").status_code == 200


def test_no_key_and_a_wrong_key_are_401(db):
    assert_envelope(APIClient().get("/v1/files"), 401, "invalid_api_key")
    assert_envelope(make_client("sk-bs-not-a-key").get("/v1/files"), 401, "invalid_api_key")


# --- Deployment checks ----------------------------------------------------------------------


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    # given the production settings the README documents (not the test settings)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SECURE_", "SESSION_", "CSRF_", "BATCHSERVER_", "Q_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="batchserver.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="batch.example.com",
        BATCHSERVER_DATA_DIR=str(tmp_path),
    )

    # when Django's deployment checks run
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    # then they find nothing
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output
    assert "WARNINGS" not in output and "ERRORS" not in output


# --- CSRF: cookie-authenticated pages keep it; the API does not use cookies ------------------


@pytest.fixture
def admin_user(db):
    return User.objects.create_superuser("root", "root@example.com", "a-long-password-123")


def test_admin_login_without_a_csrf_token_is_refused(admin_user):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "root", "password": "a-long-password-123"})
    assert response.status_code == 403
    assert b"CSRF" in response.content
    assert "_auth_user_id" not in client.session


def test_admin_post_without_a_csrf_token_is_refused(admin_user, api_key):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    key, _ = api_key
    response = client.post(
        f"/admin/batchserver/apikey/{key.pk}/change/", {"name": "renamed"}, follow=False
    )
    # refused for the missing token: the same post without CSRF enforcement saves the key
    assert response.status_code == 403
    assert b"CSRF" in response.content
    key.refresh_from_db()
    assert key.name == "test"


def test_an_admin_session_cookie_does_not_authenticate_the_api(admin_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert_envelope(client.get("/v1/files"), 401, "invalid_api_key")


def test_api_calls_with_a_key_need_no_csrf_token(api_key):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key[1]}")
    response = client.post("/v1/batches", {}, format="json")
    assert response.status_code == 400  # validated, not refused by CSRF


# --- Uploaded files are data ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("page.html", b"<html><script>alert(document.cookie)</script></html>"),
        ("evil.py", b"import os\nos.system('echo owned')\n"),
        ("image.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
    ],
)
def test_uploaded_files_are_served_as_inert_attachments(client_api, upload, filename, content):
    # given an uploaded file a browser or a server could take for code
    file = upload(content, purpose="user_data", filename=filename)

    # when it is downloaded
    response = client_api.get(f"/v1/files/{file['id']}/content")

    # then its bytes come back unchanged, as an attachment of an inert type, never sniffed
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == content
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert filename in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"


def test_uploads_are_stored_under_their_id_whatever_their_name(client_api, upload):
    buffer = io.BytesIO(b"payload")
    buffer.name = "../../../etc/cron.d/evil.py"
    response = client_api.post(
        "/v1/files", {"file": buffer, "purpose": "user_data"}, format="multipart"
    )
    assert response.status_code == 200, response.content
    file = File.objects.get(id=response.json()["id"])

    assert file.filename == "evil.py"
    stored = Path(file.content.path).resolve()
    assert stored.parent.name == file.id
    assert stored.is_relative_to(Path(django_settings.MEDIA_ROOT).resolve())


def test_batch_output_is_served_as_jsonl_attachment(client_api, create_batch):
    batch = create_batch([request_line(1)])
    response = client_api.get(f"/v1/files/{batch['output_file_id']}/content")
    assert response["Content-Type"] == "application/jsonl"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
