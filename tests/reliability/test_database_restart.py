"""PostgreSQL restarted in the middle of a batch: 503s while it is down, then nothing lost.

The cluster test starts a throwaway PostgreSQL (``initdb`` into a temporary folder, a free
port; never the shared server), migrates it, runs a web server and a worker on it, and stops
the database with ``pg_ctl stop -m immediate`` (a crash) in the middle of a batch. While it is
down every API call and every admin page answers 503 in the OpenAI error envelope, never a
traceback; once it is back the batch completes with every custom_id exactly once, and the batch
note tells the operator that the worker lost the database and recovered.

The unit tests below check the same 503 for a database error raised outside a view (while
authenticating, and inside a middleware such as the session's).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import OperationalError
from django.test import Client

from batchserver.models import ApiKey
from tests.cluster import BASE_DIR, cluster_env, running_cluster
from tests.postgres import CannotRun, ThrowawayPostgres, throwaway_postgres_server
from tests.reliability.conftest import ENDPOINT, check_exactly_once, input_lines, record_figures

REQUESTS = 2000
WORKER_ENV = {
    "BATCH_CHUNK_SIZE": "50",
    "FAKE_DELAY_PER_REQUEST_MS": "10",
    "BATCH_LEASE_SECONDS": "10",
    "WORKER_HEARTBEAT_SECONDS": "1",
    "BATCH_TASK_SLICE_SECONDS": "10",
}
DOWN_SECONDS = 8.0
FINISH_TIMEOUT = 180.0


# --- a throwaway PostgreSQL (tests/postgres.py) ------------------------------------------------


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    try:
        with throwaway_postgres_server() as server:
            yield server
    except CannotRun as exc:
        pytest.skip(str(exc))


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


SETUP = """
from django.contrib.auth.models import User
from batchserver.models import ApiKey
from models_registry.services import register_model
register_model("fake-model")
User.objects.create_superuser("ops", "ops@example.com", "pw-ops-restart-1")
print(ApiKey.issue("restart")[1])
"""


# --- the cluster test --------------------------------------------------------------------------


def _is_unavailable(response: httpx.Response) -> bool:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return (
        response.status_code == 503
        and set(error) == {"message", "type", "param", "code"}
        and error["code"] == "service_unavailable"
        and "Traceback" not in response.text
    )


def _admin_session(url: str) -> httpx.Client:
    session = httpx.Client(base_url=url, timeout=10, follow_redirects=False)
    session.get("/admin/login/")
    token = session.cookies["csrftoken"]
    response = session.post(
        "/admin/login/?next=/admin/",
        data={"username": "ops", "password": "pw-ops-restart-1", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{url}/admin/login/"},
    )
    assert response.status_code == 302, response.text[:500]
    return session


@pytest.mark.cluster
def test_database_restart_mid_batch_loses_and_repeats_nothing(throwaway_postgres, tmp_path):
    # given a web server and a worker on a database of their own, with a batch running
    throwaway_postgres.create_database("bs_rel_restart")
    overrides = {
        **WORKER_ENV,
        "DATABASE_URL": throwaway_postgres.url("bs_rel_restart"),
        "BATCHSERVER_DATA_DIR": str(tmp_path / "data"),
    }
    env = {**cluster_env(), **overrides}
    _manage(env, "migrate", "--noinput", "-v0")
    _manage(env, "createcachetable")
    raw_key = _manage(env, "shell", "-v", "0", "-c", SETUP).strip().splitlines()[-1]
    with running_cluster(tmp_path, **overrides) as cluster:
        api = httpx.Client(
            base_url=f"{cluster.url}/v1",
            headers={"Authorization": f"Bearer {raw_key}"},
            timeout=10,
        )
        file_id = api.post(
            "/files",
            files={"file": ("restart.jsonl", input_lines(REQUESTS))},
            data={"purpose": "batch"},
        ).json()["id"]
        batch_id = api.post(
            "/batches",
            json={"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h"},
        ).json()["id"]
        admin = _admin_session(cluster.url)
        _wait(lambda: api.get(f"/batches/{batch_id}").json()["request_counts"]["completed"] >= 300)

        # when PostgreSQL crashes mid-batch and stays down for a while
        throwaway_postgres.crash()
        down_at = time.monotonic()
        probes = []
        while time.monotonic() - down_at < DOWN_SECONDS:
            csrf = {"X-CSRFToken": admin.cookies["csrftoken"], "Referer": cluster.url}
            probes += [
                ("GET /v1/batches/{id}", api.get(f"/batches/{batch_id}")),
                ("GET /v1/files", api.get("/files")),
                ("POST /v1/batches", api.post("/batches", json={"input_file_id": file_id})),
                ("GET /admin/jobs/batch/", admin.get("/admin/jobs/batch/")),
                (
                    "POST /workers/reset-stuck",
                    admin.post("/workers/reset-stuck", headers=csrf),
                ),
            ]
            time.sleep(0.5)

        # then every call while it was down answered 503 in the OpenAI envelope
        bad = [(what, r.status_code, r.text[:200]) for what, r in probes if not _is_unavailable(r)]
        assert not bad, bad
        throwaway_postgres.start()
        up_at = time.monotonic()
        _wait(lambda: api.get(f"/batches/{batch_id}").status_code == 200, timeout=30)
        api_back = time.monotonic() - up_at

        # and once it is back the batch completes, every custom_id exactly once
        batch = _wait(
            lambda: (b := api.get(f"/batches/{batch_id}").json())["status"] == "completed" and b,
            timeout=FINISH_TIMEOUT,
            diagnostics=cluster.diagnostics,
        )
        finished = time.monotonic() - up_at
        texts = [api.get(f"/files/{batch['output_file_id']}/content").text]
        if batch["error_file_id"]:
            texts.append(api.get(f"/files/{batch['error_file_id']}/content").text)
        figures = check_exactly_once(texts, {f"req-{i}" for i in range(REQUESTS)})
        note = _manage(env, "shell", "-v", "0", "-c", _NOTE.format(batch_id=batch_id)).strip()
        cluster.assert_running()
        web_log = cluster.web.log_path.read_text(errors="replace")

    # and the operator can see that the worker lost the database and carried on
    assert "database connection was lost" in note, (note, cluster.diagnostics())
    assert "Traceback" not in web_log
    record_figures(
        "database_restart",
        {
            **figures,
            "requests": REQUESTS,
            "database_down_seconds": DOWN_SECONDS,
            "probes_while_down": len(probes),
            "probes_not_503_envelope": len(bad),
            "api_back_seconds_after_restart": round(api_back, 2),
            "batch_done_seconds_after_restart": round(finished, 2),
            "batch_note": note,
        },
    )


_NOTE = "from jobs.models import Batch; print(Batch.objects.get(pk='{batch_id}').note)"


def _wait(check, timeout: float = 60.0, diagnostics=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (httpx.HTTPError, ValueError, KeyError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting after {timeout}s\n{diagnostics()}")
        time.sleep(0.2)


# --- database errors outside a view ------------------------------------------------------------


def _assert_envelope_503(response) -> None:
    assert response.status_code == 503, response.content[:300]
    body = json.loads(response.content)
    assert body["error"]["code"] == "service_unavailable"
    assert body["error"]["type"] == "server_error"
    assert response["Retry-After"] == "5"


def test_database_down_while_authenticating_an_api_key_is_a_503(db, monkeypatch):
    raw = ApiKey.issue("k")[1]

    def unavailable(cls, raw_key, **options):
        raise OperationalError("connection refused")

    monkeypatch.setattr(ApiKey, "find", classmethod(unavailable))
    response = Client(raise_request_exception=False).get(
        "/v1/batches", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    _assert_envelope_503(response)


def test_database_down_while_loading_the_session_is_a_503(db, monkeypatch):
    from django.contrib.sessions.backends.db import SessionStore

    def unavailable(self):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(SessionStore, "load", unavailable)
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "x" * 32
    _assert_envelope_503(client.get("/admin/"))


def test_database_down_inside_a_middleware_is_a_503_not_a_500(db, monkeypatch):
    # given the session middleware failing to save (the database went away after the view)
    def unavailable(self, request, response):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(SessionMiddleware, "process_response", unavailable)
    # when any page is served, then the answer is the 503 envelope, not a 500
    _assert_envelope_503(Client(raise_request_exception=False).get("/healthz"))


def test_other_errors_inside_a_middleware_stay_a_plain_500(db, monkeypatch):
    def broken(self, request, response):
        raise RuntimeError("a bug")

    monkeypatch.setattr(SessionMiddleware, "process_response", broken)
    response = Client(raise_request_exception=False).get("/healthz")
    assert response.status_code == 500
