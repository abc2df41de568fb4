"""Chaos at scale (not in CI): 100+ random SIGKILLs across one 20,000-line batch on 2 workers,
with PostgreSQL restarted once in the middle; then every custom_id must be in the output and
error files exactly once, and no engine process may be left.

Everything runs on a **throwaway PostgreSQL** (``tests/postgres.py``: initdb in /tmp, a free
port; never the shared server) and the Redis broker (a queue name of this run's own), with the
fake engine in a real engine host process (``BATCHSERVER_ENGINE=fake-hosted``) that takes
``--delay-ms`` per request. Two ``manage.py qcluster`` processes share the batch. Every
``--every`` seconds (uniform) one SIGKILL, at random:

- ``group``: a whole qcluster process group (its engine host, in a session of its own, must die
  with it: parent-death signal), then a fresh qcluster is started in its place;
- ``worker``: the django-q2 worker process only (its sentinel spawns a new one; the old
  engine host must die with its parent);
- ``host``: the engine host (the worker notices, retries the chunk on a new host).

Halfway through the kills PostgreSQL is crashed (``pg_ctl stop -m immediate``), kept down for
``--db-down`` seconds, and started again. Usage:

    .venv/bin/python bench/chaos_at_scale.py [--requests 20000] [--kills 100] [--seed N]

Prints the figures as JSON at the end (RELIABILITY.md quotes them) and exits non-zero if a line
was lost, repeated or invalid, or an engine process survived.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import psutil
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _cluster  # noqa: E402
from tests.postgres import throwaway_postgres_server  # noqa: E402

ENDED = ("completed", "failed", "expired", "cancelled")


def lines(n: int) -> bytes:
    return "".join(
        json.dumps(
            {
                "custom_id": f"req-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": _cluster.FAKE_MODEL,
                    "messages": [{"role": "user", "content": f"q {i}"}],
                },
            }
        )
        + "\n"
        for i in range(n)
    ).encode()


def is_engine_host(proc: psutil.Process) -> bool:
    try:
        return "multiprocessing.spawn" in " ".join(proc.cmdline()) and proc.pid != os.getpid()
    except psutil.Error:
        return False


class Workers:
    """The qcluster processes, the engine hosts seen under them, and the kills."""

    def __init__(self, env: dict[str, str], log_dir: Path, count: int) -> None:
        self.env, self.log_dir = env, log_dir
        self.started = 0
        self.procs = [self.start() for _ in range(count)]
        self.hosts_seen: dict[int, psutil.Process] = {}

    def start(self) -> _cluster.Process:
        self.started += 1
        return _cluster.start_worker(self.env, self.log_dir, f"worker-{self.started}")

    def tree(self, leader: _cluster.Process) -> list[psutil.Process]:
        try:
            root = psutil.Process(leader.popen.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def look(self) -> None:
        """Remember every engine host alive under our workers (checked at the end)."""
        for leader in self.procs:
            for proc in self.tree(leader):
                if is_engine_host(proc):
                    self.hosts_seen.setdefault(proc.pid, proc)

    def task_processes(self, leader: _cluster.Process) -> list[psutil.Process]:
        """django-q2's worker processes: the children of the sentinel that run tasks (they
        are the parents of engine hosts, or have a 'processing'/'idle' title)."""
        found = []
        for proc in self.tree(leader):
            try:
                title = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            if "qcluster" in title and ("idle" in title or "processing" in title):
                found.append(proc)
        return found

    def kill(self, rng: random.Random) -> str:
        kind = rng.choice(("group", "worker", "host"))
        index = rng.randrange(len(self.procs))
        leader = self.procs[index]
        self.look()
        if kind == "host":  # any worker's: a host being restarted is not there yet
            hosts = [p for w in self.procs for p in self.tree(w) if is_engine_host(p)]
            if hosts:
                rng.choice(hosts).send_signal(signal.SIGKILL)
                return kind
            kind = "worker"  # no host anywhere right now: kill a worker instead
        if kind == "worker":
            workers = self.task_processes(leader)
            if workers:
                rng.choice(workers).send_signal(signal.SIGKILL)
                return kind
            kind = "group"
        os.killpg(leader.popen.pid, signal.SIGKILL)
        leader.popen.wait(10)
        self.procs[index] = self.start()
        return kind

    def stop(self) -> None:
        for leader in self.procs:
            leader.stop()


def check_exactly_once(texts: list[str], n: int) -> dict[str, int]:
    ids: Counter[str] = Counter()
    invalid = total = 0
    for text in texts:
        for line in text.splitlines():
            total += 1
            try:
                ids[json.loads(line)["custom_id"]] += 1
            except (ValueError, KeyError, TypeError):
                invalid += 1
    expected = {f"req-{i}" for i in range(n)}
    return {
        "lines": total,
        "lost": len(expected - set(ids)),
        "duplicated": sum(c - 1 for c in ids.values() if c > 1),
        "unexpected": len(set(ids) - expected),
        "invalid": invalid,
    }


def main() -> None:
    _cluster.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--delay-ms", type=float, default=15.0)
    parser.add_argument("--chunk-size", type=int, default=100)
    parser.add_argument("--every", type=float, nargs=2, default=(0.5, 2.5))
    parser.add_argument("--db-down", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    log_dir = Path(tempfile.mkdtemp(prefix="chaos-scale-"))
    with throwaway_postgres_server() as pg:
        pg.create_database("bs_chaos")
        env = _cluster.bench_env(
            DATABASE_URL=pg.url("bs_chaos"),
            BATCHSERVER_DATA_DIR=str(log_dir / "data"),
            BATCHSERVER_ENGINE="fake-hosted",
            DEBUG="0",
            SECURE_SSL_REDIRECT="0",
            API_THROTTLE_RATE="off",
            REDIS_URL=args.redis,
            Q_CLUSTER_NAME_DEFAULT=f"chaos-{uuid.uuid4().hex[:8]}",
            BATCH_CHUNK_SIZE=str(args.chunk_size),
            FAKE_DELAY_PER_REQUEST_MS=str(args.delay_ms),
            BATCH_LEASE_SECONDS="3",
            WORKER_HEARTBEAT_SECONDS="1",
            BATCH_TASK_SLICE_SECONDS="5",
            WORKER_WARM_MODEL=_cluster.FAKE_MODEL,
            BATCHSERVER_ENGINE_STOP_GRACE="3",
        )
        key = _cluster.prepare(env)
        _cluster.register_fake_model(env)
        print(f"seed {args.seed}; logs in {log_dir}", flush=True)
        figures = run(args, rng, env, log_dir, key, pg)
    print(json.dumps(figures, indent=2, sort_keys=True))
    broken = {k: figures[k] for k in ("lost", "duplicated", "unexpected", "invalid")}
    if any(broken.values()) or figures["engine_processes_left"] or figures["status"] != "completed":
        sys.exit(1)


def run(args, rng: random.Random, env, log_dir: Path, key: str, pg) -> dict:
    web, url = _cluster.start_web(env, log_dir, workers=2)
    workers = Workers(env, log_dir, args.workers)
    client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=5, timeout=60)
    kills: Counter[str] = Counter()
    started = time.monotonic()
    try:
        upload = client.files.create(file=("chaos.jsonl", lines(args.requests)), purpose="batch")
        batch = client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        db_restarted_at_kill = args.kills // 2
        db = {}
        while sum(kills.values()) < args.kills:
            time.sleep(rng.uniform(*args.every))
            workers.look()
            kills[workers.kill(rng)] += 1
            if sum(kills.values()) == db_restarted_at_kill:
                down = time.monotonic()
                pg.crash()
                time.sleep(args.db_down)
                pg.start()
                db = {"db_down_seconds": round(time.monotonic() - down, 1)}
            status = retrieve(client, batch.id).status
            if status in ENDED:
                print(f"the batch ended ({status}) after {sum(kills.values())} kills", flush=True)
                break
            if sum(kills.values()) % 10 == 0:
                print(f"{sum(kills.values())} kills: {dict(kills)}", flush=True)
        deadline = time.monotonic() + 600
        while (batch := retrieve(client, batch.id)).status not in ENDED:
            if time.monotonic() > deadline:
                raise RuntimeError(f"batch still {batch.status} 10 minutes after the last kill")
            workers.look()
            time.sleep(1)
        seconds = time.monotonic() - started
        texts = [client.files.content(batch.output_file_id).text]
        if batch.error_file_id:
            texts.append(client.files.content(batch.error_file_id).text)
    finally:
        workers.look()
        workers.stop()
        web.stop()
    time.sleep(2)
    left = [p.pid for p in workers.hosts_seen.values() if alive(p)]
    left += [p.pid for p in psutil.process_iter() if is_engine_host(p) and mine(p, log_dir)]
    return {
        **check_exactly_once(texts, args.requests),
        **db,
        "status": batch.status,
        "requests": args.requests,
        "kills": sum(kills.values()),
        "kills_by_kind": dict(kills),
        "qclusters_started": workers.started,
        "engine_hosts_seen": len(workers.hosts_seen),
        "engine_processes_left": sorted(set(left)),
        "seconds": round(seconds, 1),
        "seed": args.seed,
        "completed": batch.request_counts.completed,
        "failed": batch.request_counts.failed,
    }


def retrieve(client: OpenAI, batch_id: str):
    """The batch, riding out the API's 503s while the database is down."""
    for _ in range(60):
        try:
            return client.batches.retrieve(batch_id)
        except Exception:  # 503 while PostgreSQL restarts
            time.sleep(1)
    return client.batches.retrieve(batch_id)


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def mine(proc: psutil.Process, log_dir: Path) -> bool:
    try:
        return proc.environ().get("BATCHSERVER_DATA_DIR", "").startswith(str(log_dir))
    except psutil.Error:
        return False


if __name__ == "__main__":
    main()
