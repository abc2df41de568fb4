"""Tiny runs of the benchmark scripts, so they keep working (figures are not checked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_script(name: str, *args: str, tmp_path: Path, timeout: int = 900) -> str:
    # Not the test settings' environment (inline tasks, fake engine): what a user's shell has.
    test_only = {"Q_SYNC", "BATCHSERVER_ENGINE", "DEBUG", "DJANGO_SETTINGS_MODULE"}
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k not in test_only
    }
    env.update(
        BENCH_DATABASE_URL=f"sqlite:///{tmp_path / 'bench.sqlite3'}",
        BATCHSERVER_DATA_DIR=str(tmp_path / "data"),
        BATCHSERVER_MODELS_DIR=os.environ.get("BATCHSERVER_MODELS_DIR", ""),
        DJANGO_SETTINGS_MODULE="batchserver.settings",
    )
    if not env["BATCHSERVER_MODELS_DIR"]:
        from django.conf import settings

        env["BATCHSERVER_MODELS_DIR"] = str(settings.MODELS_DIR)
    result = subprocess.run(
        [sys.executable, f"bench/{name}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.engine
def test_engine_efficiency_smoke(tmp_path):
    out = run_script(
        "engine_efficiency.py",
        "--requests",
        "4",
        "--runs",
        "1",
        "--max-tokens",
        "8",
        "--no-fresh-ready",  # a fourth engine load; (d) is the warm start's own path
        tmp_path=tmp_path,
    )
    assert "ratio server cold / run_batch" in out


@pytest.mark.cluster
def test_orchestration_overhead_smoke(tmp_path):
    out = run_script(
        "orchestration_overhead.py",
        "--requests",
        "200",
        "--runs",
        "1",
        "--chunk-size",
        "50",
        tmp_path=tmp_path,
        timeout=120,
    )
    assert "requests/s, end to end" in out


@pytest.mark.cluster
def test_upload_validation_smoke(tmp_path):
    out = run_script(
        "upload_validation.py",
        "--lines",
        "300",
        "--megabytes",
        "1",
        "--runs",
        "1",
        tmp_path=tmp_path,
        timeout=120,
    )
    assert "upload + validation seconds" in out


def test_validation_split_smoke(tmp_path):
    out = run_script(
        "validation_split.py",
        *("--lines", "300", "--megabytes", "1", "--runs", "1"),
        tmp_path=tmp_path,
        timeout=120,
    )
    assert "worker CPU seconds" in out


@pytest.mark.engine
def test_engine_stop_smoke(tmp_path):
    out = run_script("engine_stop.py", "--runs", "1", tmp_path=tmp_path)
    assert "stop seconds" in out


@pytest.mark.cluster
def test_api_latency_smoke(tmp_path):
    out = run_script(
        "api_latency.py",
        "--clients",
        "3",
        "--duration",
        "2",
        "--runs",
        "1",
        "--web-workers",
        "2",
        "--history",
        "2",
        "--pause-ms",
        "5",
        tmp_path=tmp_path,
        timeout=120,
    )
    assert "goal p99 <= 100 ms" in out


@pytest.mark.engine
def test_benchmark_vs_server_smoke(tmp_path):
    out = run_script(
        "benchmark_vs_server.py",
        "--requests",
        "4",
        "--runs",
        "1",
        "--max-tokens",
        "8",
        tmp_path=tmp_path,
    )
    assert "ratio benchmark / server, warm" in out


@pytest.mark.cluster
def test_scale_out_smoke(tmp_path):
    redis = pytest.importorskip("redis")
    url = os.environ.get("E2E_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url).ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {url} (CI starts one: .ci/run)")
    out = run_script(
        "scale_out.py",
        *("--requests", "60", "--delay-ms", "1", "--chunk-size", "20"),
        *("--workers", "1", "--runs", "1", "--redis", url),
        tmp_path=tmp_path,
        timeout=180,
    )
    assert "1 worker(s): create->completed" in out
