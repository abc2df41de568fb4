"""Real web server and worker processes on the pytest test database, for end-to-end tests.

``running_cluster`` starts, each as the leader of its own process group, gunicorn (two workers,
a free loopback port, DEBUG off so whitenoise serves static files as in production) and
``manage.py qcluster``, both with ``tests.settings``, ``Q_SYNC=0`` and ``DATABASE_URL`` naming
the database pytest-django created. It stops them by signalling each leader first (qcluster's
main process hangs when its children are killed under it), then what is left of each group, and
asserts that no process of either group remains.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
from django.conf import settings

from jobs.worker.engine.host import group_members

BASE_DIR = Path(settings.BASE_DIR)
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
QCLUSTER_RUNNING = re.compile(r"Q Cluster \S+ \[[^\]]*\] running")
WORKER_ENV = {"BATCH_CHUNK_SIZE": "5", "FAKE_HANG_SECONDS": "4"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(db: dict[str, Any]) -> str:
    """A ``DATABASE_URL`` (django-environ syntax) for the database Django is connected to."""
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    user = quote(db.get("USER") or "", safe="")
    password = quote(str(db.get("PASSWORD") or ""), safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(db['NAME'], safe='')}"


@dataclass
class ClusterProcess:
    """One started process, the leader of its own process group, logging to a file."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pgid(self) -> int:
        return self.popen.pid  # start_new_session=True: the leader's pid is the group id

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def members(self) -> list[psutil.Process]:
        """Live (non-zombie) processes of this group."""
        return group_members(self.pgid)

    def assert_running(self) -> None:
        code = self.popen.poll()
        assert code is None, f"{self.name} exited with {code}:\n{self.log_tail()}"

    def stop(self) -> bool:
        """Stop the whole group; True if the leader's own SIGTERM was enough."""
        graceful = True
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                graceful = False
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self.members():
                break
            graceful = False
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                break
            psutil.wait_procs(self.members(), timeout=5)
        if self.popen.poll() is None:
            self.popen.wait(5)
        return graceful


@dataclass
class LiveCluster:
    """The running web server and worker, with the URL of the web server."""

    url: str
    web: ClusterProcess
    worker: ClusterProcess
    env: dict[str, str] = field(repr=False)

    def assert_running(self) -> None:
        self.web.assert_running()
        self.worker.assert_running()

    def diagnostics(self) -> str:
        return (
            f"--- web log ({self.web.log_path}) ---\n{self.web.log_tail()}\n"
            f"--- worker log ({self.worker.log_path}) ---\n{self.worker.log_tail()}"
        )


def _start(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> ClusterProcess:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            args,
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process = ClusterProcess(name, popen, log_path)
    _started[:] = [p for p in _started if p.members()] + [process]
    return process


def _wait_until(check: Callable[[], bool], process: ClusterProcess, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        process.assert_running()
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(
        f"{process.name}: no {what} within {START_TIMEOUT}s:\n{process.log_tail()}"
    )


def _healthy(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                return response.status == 200 and json.load(response)["status"] == "ok"
        except (OSError, urllib.error.URLError, ValueError):
            return False

    return check


def cluster_env() -> dict[str, str]:
    """The environment of the started processes: the test settings on the test database."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "Q_CLUSTER_NAME"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=database_url(settings.DATABASES["default"]),
        BATCHSERVER_DATA_DIR=str(settings.DATA_DIR),
        BATCHSERVER_ENGINE="fake",
        Q_SYNC="0",
        Q_POLL="0.1",
        Q_WORKERS="1",
        DEBUG="0",
        PYTHONUNBUFFERED="1",
        # The ORM broker in the test database, never a Redis queue another cluster may read.
        REDIS_URL="",
        **WORKER_ENV,
    )
    return env


# Every process group this module started, by name: a cluster starts only once none of the
# others is alive, so a worker left running by another test (a package-scoped fixture imported
# into another package lives until the end of the session) cannot claim this test's chunks with
# its own settings (another chunk size, no delay).
_started: list[ClusterProcess] = []


def still_running() -> list[str]:
    """``name (pgid)`` of every process group started here that still has a process."""
    return [f"{p.name} ({p.pgid})" for p in _started if p.members()]


@contextlib.contextmanager
def running_cluster(log_dir: Path, **env_overrides: str) -> Iterator[LiveCluster]:
    """Start web + worker on the test database; stop both groups and check nothing is left."""
    env = {**cluster_env(), **env_overrides}
    others = still_running()
    assert not others, f"processes of another test still run on the test database: {others}"
    python = sys.executable
    subprocess.run(
        [python, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=BASE_DIR,
        env=env,
        check=True,
        timeout=120,
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    started: list[ClusterProcess] = []
    try:
        web_args = ["-m", "gunicorn", "batchserver.wsgi", "-b", f"127.0.0.1:{port}"]
        web_args += ["--workers", "2", "--timeout", "60", "--graceful-timeout", "5"]
        web = _start("web", [python, *web_args], env, log_dir)
        started.append(web)
        worker = _start("worker", [python, "manage.py", "qcluster"], env, log_dir)
        started.append(worker)
        _wait_until(_healthy(url), web, "answer on /healthz")
        _wait_until(
            lambda: bool(QCLUSTER_RUNNING.search(worker.log_path.read_text(errors="replace"))),
            worker,
            "'Q Cluster … running' line",
        )
    except BaseException:
        for process in started:
            process.stop()
        raise
    try:
        yield LiveCluster(url=url, web=web, worker=worker, env=env)
    finally:  # a failed test stops its servers too, or they outlive it on the test database
        graceful = {p.name: p.stop() for p in started}
    leftovers = {p.name: [m.pid for m in p.members()] for p in started if p.members()}
    assert not leftovers, f"processes left behind: {leftovers}"
    assert all(graceful.values()), f"needed more than SIGTERM to the leader: {graceful}"


@contextlib.contextmanager
def extra_worker(
    cluster: LiveCluster, log_dir: Path, name: str = "worker-2"
) -> Iterator[ClusterProcess]:
    """One more ``manage.py qcluster`` (with its own engine) on the cluster's database and broker.

    Stopped like the others: SIGTERM to its leader, then its group; nothing of it may remain.
    """
    worker = start_worker(cluster.env, log_dir, name)
    try:
        yield worker
    finally:
        graceful = worker.stop()
    assert not worker.members(), f"{name} left processes behind"
    assert graceful, f"{name} needed more than SIGTERM to its leader"


def start_worker(env: dict[str, str], log_dir: Path, name: str) -> ClusterProcess:
    """Start a ``manage.py qcluster`` with ``env`` and wait for its 'running' line."""
    worker = _start(name, [sys.executable, "manage.py", "qcluster"], env, log_dir)
    try:
        _wait_until(
            lambda: bool(QCLUSTER_RUNNING.search(worker.log_path.read_text(errors="replace"))),
            worker,
            "'Q Cluster … running' line",
        )
    except BaseException:
        worker.stop()
        raise
    return worker


def kill_group(process: ClusterProcess, timeout: float = 10.0) -> list[int]:
    """SIGKILL a started process's whole group at once (a crash, not a stop).

    Returns the pids of the group's processes still alive after ``timeout`` (should be none).
    """
    members = process.members()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pgid, signal.SIGKILL)
    process.popen.wait(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in members if _alive(p)] + process.members()
        if not alive:
            return []
        time.sleep(0.05)
    return sorted({p.pid for p in alive})


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
