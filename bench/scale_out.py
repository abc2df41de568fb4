"""Scale-out: one batch on 1, 2 and 4 workers, with an engine bound by latency like a GPU.

The fake engine takes ``--delay-ms`` per request (``FAKE_DELAY_PER_REQUEST_MS``: it sleeps, as
a worker waits on its GPU), so a worker's speed is set by its engine, not by the CPU, and N
workers on one machine stand for N GPUs. Per run and worker count: fresh ``manage.py qcluster``
processes on the Redis broker (``REDIS_URL``, a queue name of this run's own) and PostgreSQL
(``BENCH_DATABASE_URL``), one gunicorn; the batch is uploaded with the openai SDK, created, and
polled every 0.1 s until ``completed``. The worker counts alternate within each run (1, 2, 4,
then again), so a drift of the machine's speed touches all of them alike. Prints seconds per
batch, requests/s, the speed-up against one worker and how the chunks were shared. Usage:

    .venv/bin/python bench/scale_out.py [--requests 20000] [--delay-ms 5] [--workers 1 2 4]
        [--runs 3] [--chunk-size 100] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _cluster  # noqa: E402
from bench._cluster import spread  # noqa: E402
from bench.orchestration_overhead import input_file  # noqa: E402

ENDED = ("completed", "failed", "expired", "cancelled")


def chunks_per_worker(database_url: str, batch_id: str) -> list[int]:
    """How many chunks of the batch each worker ran (from the database), largest first."""
    query = "SELECT worker_id, count(*) FROM jobs_batchchunk WHERE batch_id = {} GROUP BY 1"
    if database_url.startswith("sqlite:///"):  # the smoke test's one worker
        import sqlite3

        with contextlib.closing(sqlite3.connect(database_url[len("sqlite:///") :])) as conn:
            rows = conn.execute(query.format("?"), [batch_id]).fetchall()
    else:
        import psycopg

        with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as conn:
            rows = conn.execute(query.format("%s"), [batch_id]).fetchall()
    return sorted((count for _, count in rows), reverse=True)


def one_batch(url: str, key: str, content: bytes, n: int) -> dict[str, float]:
    client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=600)
    started = time.monotonic()
    file = client.files.create(file=("scale.jsonl", content), purpose="batch")
    created = time.monotonic()
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    running = None
    while batch.status not in ENDED:
        time.sleep(0.1)
        batch = client.batches.retrieve(batch.id)
        if running is None and batch.status != "validating":
            running = time.monotonic()
    ended = time.monotonic()
    if batch.status != "completed" or batch.request_counts.completed != n:
        raise RuntimeError(f"batch {batch.id} ended {batch.status} with {batch.request_counts}")
    return {
        "batch_id": batch.id,
        "wall": ended - started,  # upload to completed
        "batch": ended - created,  # create to completed
        "run": ended - (running or created),  # in_progress to completed
    }


def main() -> None:
    _cluster.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--delay-ms", type=float, default=5.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=100)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    queue = f"bench-scale-{uuid.uuid4().hex[:8]}"  # no other cluster reads or feeds it
    env = _cluster.fake_env(
        API_THROTTLE_RATE="off",
        BATCH_CHUNK_SIZE=str(args.chunk_size),
        FAKE_DELAY_PER_REQUEST_MS=str(args.delay_ms),
        REDIS_URL=args.redis,
        Q_CLUSTER_NAME_DEFAULT=queue,
    )
    _cluster.ensure_database(env["DATABASE_URL"])
    key = _cluster.prepare(env)
    _cluster.register_fake_model(env)
    content = input_file(args.requests)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    ideal = args.requests * args.delay_ms / 1000
    print(
        f"{args.requests} requests at {args.delay_ms:g} ms each ({ideal:.0f} s of engine time), "
        f"chunks of {args.chunk_size}, workers {args.workers}, Redis queue {queue}, "
        f"logs in {log_dir}",
        flush=True,
    )
    results: dict[int, list[dict[str, float]]] = {n: [] for n in args.workers}
    web = None
    try:
        web, url = _cluster.start_web(env, log_dir, workers=2)
        for run in range(1, args.runs + 1):
            for count in args.workers:
                results[count].append(measure(env, log_dir, url, key, content, args, count, run))
    finally:
        if web is not None:
            web.stop()
    report(args, results)


def measure(env, log_dir: Path, url: str, key: str, content: bytes, args, count: int, run: int):
    workers = []
    try:
        for i in range(count):
            workers.append(_cluster.start_worker(env, log_dir, f"worker-r{run}-n{count}-{i}"))
        load = os.getloadavg()[0]
        figures = one_batch(url, key, content, args.requests)
    finally:
        for worker in workers:
            worker.stop()
    figures["load"] = load
    shares = chunks_per_worker(env["DATABASE_URL"], figures["batch_id"])
    print(
        f"run {run}, {count} worker(s): batch {figures['batch']:6.2f} s "
        f"({args.requests / figures['batch']:6.0f} req/s), run phase {figures['run']:6.2f} s, "
        f"upload->completed {figures['wall']:6.2f} s; chunks per worker {shares}; "
        f"load average {load:.2f}",
        flush=True,
    )
    figures["shares"] = shares
    return figures


def report(args, results: dict[int, list[dict]]) -> None:
    base = statistics.median(r["batch"] for r in results[args.workers[0]])
    base_run = statistics.median(r["run"] for r in results[args.workers[0]])
    print(f"\n{args.requests} requests, {args.delay_ms:g} ms each, {args.runs} runs:")
    print("median (min, max)")
    for count, rows in results.items():
        batch = [r["batch"] for r in rows]
        run = [r["run"] for r in rows]
        print(
            f"  {count} worker(s): create->completed {spread(batch, '{:.2f}')} s, "
            f"speed-up {base / statistics.median(batch):.2f}x; "
            f"run phase {spread(run, '{:.2f}')} s, "
            f"speed-up {base_run / statistics.median(run):.2f}x; "
            f"load average {spread([r['load'] for r in rows], '{:.2f}')}"
        )
        shares = Counter(tuple(r["shares"]) for r in rows)
        print(f"    chunks per worker: {dict(shares)}")


if __name__ == "__main__":
    main()
