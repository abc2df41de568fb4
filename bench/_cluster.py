"""Start and stop a real web server and worker for benchmarks (each in its own process group)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil

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
        """Stop the leader first (qcluster hangs if its children die under it), then its group."""
        if self.popen.poll() is None:
            try:
                os.kill(self.popen.pid, signal.SIGTERM)
                self.popen.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self.members():
                break
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            psutil.wait_procs(self.members(), timeout=5)
        if self.popen.poll() is None:
            self.popen.wait(5)

    def members(self) -> list[psutil.Process]:
        """Live (non-zombie) processes of this process group."""
        found = []
        for proc in psutil.process_iter(["status"]):
            try:
                if os.getpgid(proc.pid) == self.popen.pid and proc.info["status"] != "zombie":
                    found.append(proc)
            except (ProcessLookupError, psutil.Error):
                continue
        return found


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


DEFAULT_BENCH_DATABASE = "postgres://postgres@127.0.0.1:5432/batchserver_bench"


def bench_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    # Never the server's own DATABASE_URL: each script drops and recreates its database.
    env["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", DEFAULT_BENCH_DATABASE)
    env.setdefault("BATCHSERVER_DATA_DIR", str(ROOT / "data" / "bench"))
    env.update({"DEBUG": "1", "Q_POLL": "0.1", "PYTHONUNBUFFERED": "1", **overrides})
    return env


def ensure_database(url: str) -> None:
    """Start from an empty PostgreSQL database named in ``url`` (dropped first if it exists).

    Each script starts from the same state, so rows and dead tuples left by an earlier
    invocation do not weigh on its figures.
    """
    if not url.startswith("postgres"):
        return
    import psycopg

    base, name = url.rsplit("/", 1)
    if not name.endswith("bench"):
        raise SystemExit(f"BENCH_DATABASE_URL must name a database ending in 'bench', not {name!r}")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


FAKE_MODEL = "fake-model"


def register_fake_model(env: dict[str, str]) -> None:
    """Register the model name the fake engine answers for (no weights, nothing loaded)."""
    manage(
        "shell",
        "-c",
        f"from models_registry.services import register_model; register_model({FAKE_MODEL!r})",
        env=env,
    )


def fake_env(**overrides: str) -> dict[str, str]:
    """The benchmark environment on the fake engine, with production settings (DEBUG off).

    DEBUG stays off because Django then keeps the SQL of up to 9,000 queries per connection,
    which would inflate the memory measured; plain HTTP on loopback, so no HTTPS redirect.
    """
    return bench_env(
        BATCHSERVER_ENGINE="fake",
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",
        WORKER_DEFAULT_MODEL="",  # no warm start of the built-in model (nothing to warm here)
        **overrides,
    )


def exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit, so the ``finally`` blocks stop every server (as on Ctrl-C)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


class PeakRss:
    """Samples the RSS of a process and all its descendants every ``interval`` seconds.

    ``total`` is the peak of the sum over the tree at one sample, ``largest`` the peak of any
    single process of it (in bytes). ``take()`` returns both and starts a new measurement.
    """

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.total = 0
        self.largest = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        sizes = []
        for proc in procs:
            try:
                sizes.append(proc.memory_info().rss)
            except psutil.Error:
                continue
        with self._lock:
            self.total = max(self.total, sum(sizes))
            self.largest = max(self.largest, max(sizes, default=0))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def take(self) -> tuple[int, int]:
        self.sample()
        with self._lock:
            peak = (self.total, self.largest)
            self.total = self.largest = 0
        return peak

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


MB = 1024 * 1024


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """``median (min, max)`` of a list of figures."""
    return (
        f"{fmt.format(statistics.median(values))} "
        f"(min {fmt.format(min(values))}, max {fmt.format(max(values))})"
    )


class Profiler:
    """``py-spy record`` of a process and its children (collapsed stacks), if py-spy is there.

    Used by ``--profile DIR`` of the scripts; py-spy samples from outside the process, but it
    costs CPU, so profiled runs are not the measured ones.
    """

    def __init__(self, pid: int, out: Path, rate: int = 50) -> None:
        spy = Path(PYTHON).with_name("py-spy")
        self.out = out
        self.popen = subprocess.Popen(
            [str(spy), "record", "--pid", str(pid), "--subprocesses", "--nonblocking"]
            + ["--rate", str(rate), "--format", "raw", "--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@contextlib.contextmanager
def measured_servers(
    env: dict[str, str],
    log_dir: Path,
    *,
    web_workers: int,
    profile_dir: Path | None = None,
    run: int = 1,
):
    """Start web and worker with a peak-RSS sampler on each (and py-spy when asked); yield
    ``(url, web_rss, worker_rss)``; stop profilers, samplers and servers however the run ends."""
    web = worker = web_rss = worker_rss = None
    profilers: list[Profiler] = []
    try:
        web, url = start_web(env, log_dir, workers=web_workers)
        worker = start_worker(env, log_dir)
        web_rss, worker_rss = PeakRss(web.popen.pid), PeakRss(worker.popen.pid)
        if profile_dir:
            profile_dir.mkdir(parents=True, exist_ok=True)
            profilers = [
                Profiler(process.popen.pid, profile_dir / f"{name}-{run}.txt")
                for name, process in (("web", web), ("worker", worker))
            ]
        yield url, web_rss, worker_rss
    finally:
        for profiler in profilers:
            profiler.stop()
        for sampler in (web_rss, worker_rss):
            if sampler is not None:
                sampler.close()
        for process in (worker, web):
            if process is not None:
                process.stop()
