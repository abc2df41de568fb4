"""Start and stop a real web server and worker for benchmarks (each in its own process group)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(*args: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout


def prepare(env: dict[str, str]) -> str:
    """Migrate the benchmark database and return a fresh API key."""
    manage("migrate", "-v0", env=env)
    manage("createcachetable", env=env)
    return manage("create_api_key", "--name", "bench", env=env).strip().splitlines()[-1]


class Process:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(wait)
                time.sleep(0.5)
            except subprocess.TimeoutExpired:
                continue


def start_web(env: dict[str, str], log_dir: Path, workers: int = 2) -> tuple[Process, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    web = Process(
        "web",
        [
            PYTHON,
            "-m",
            "gunicorn",
            "batchserver.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
        ],
        env,
        log_dir,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)
            return web, url
        except OSError:
            time.sleep(0.2)
    web.stop()
    raise RuntimeError(f"web server did not start; see {web.log}")


def start_worker(env: dict[str, str], log_dir: Path, name: str = "worker") -> Process:
    worker = Process(name, [PYTHON, "manage.py", "qcluster"], env, log_dir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if b"running." in worker.log.read_bytes():
            return worker
        time.sleep(0.2)
    worker.stop()
    raise RuntimeError(f"worker did not start; see {worker.log}")


def bench_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/batchserver_bench")
    env.setdefault("BATCHSERVER_DATA_DIR", str(ROOT / "data" / "bench"))
    env.update({"DEBUG": "1", "Q_POLL": "0.1", "PYTHONUNBUFFERED": "1", **overrides})
    return env


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` if it does not exist."""
    if not url.startswith("postgres"):
        return
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
