"""API latency: concurrent clients polling GET /v1/batches/{id} and GET /v1/batches.

A batch runs on the fake engine, slowed by ``FAKE_DELAY_PER_REQUEST_MS`` so it is still
``in_progress`` for the whole measurement, while ``--clients`` threads (one ``httpx.Client``
each, on 127.0.0.1) alternate between retrieving it and listing batches, for ``--duration``
seconds or ``--max-requests`` requests per client, each pausing ``--pause-ms`` after every
answer (0, the default: back to back, the hardest case; a polling client waits). Per-key
throttling is off on this server (``API_THROTTLE_RATE=off``); all clients share one key. Each
run prints p50 / p99 / max per endpoint; the summary gives the median and spread over the runs.
Usage:

    .venv/bin/python bench/api_latency.py [--clients 20] [--duration 20] [--runs 3]
        [--web-workers 4] [--history 20] [--pause-ms 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _cluster  # noqa: E402
from bench._cluster import spread  # noqa: E402

ENDED = ("completed", "failed", "expired", "cancelled")
DELAY_MS = 10
CHUNK = 50
WARMUP = 2  # first requests of each client, not counted (connection set-up, first queries)


def content(n: int) -> bytes:
    lines = (
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": _cluster.FAKE_MODEL,
                "messages": [{"role": "user", "content": f"question {i}"}],
            },
        }
        for i in range(n)
    )
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def start_batch(client: OpenAI, n: int):
    file = client.files.create(file=("bench.jsonl", content(n)), purpose="batch")
    return client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def wait(client: OpenAI, batch_id: str, until, timeout: float = 300):
    deadline = time.monotonic() + timeout
    batch = client.batches.retrieve(batch_id)
    while not until(batch.status):
        if time.monotonic() > deadline:
            raise RuntimeError(f"batch {batch_id} still {batch.status}")
        time.sleep(0.1)
        batch = client.batches.retrieve(batch_id)
    return batch


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def measure(
    url: str,
    key: str,
    batch_id: str,
    clients: int,
    duration: float,
    max_requests: int,
    pause: float = 0.0,
):
    """Latencies in ms per endpoint, and the count of non-200 answers."""
    paths = {"retrieve": f"/v1/batches/{batch_id}", "list": "/v1/batches"}
    latencies: dict[str, list[float]] = {name: [] for name in paths}
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client_loop(index: int) -> None:
        mine: dict[str, list[float]] = {name: [] for name in paths}
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as http:
            start.wait()
            deadline = time.monotonic() + duration
            for i in range(max_requests + WARMUP):
                if time.monotonic() >= deadline:
                    break
                name = ("retrieve", "list")[(i + index) % 2]
                began = time.perf_counter()
                try:
                    answer = http.get(paths[name])
                    status = answer.status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                elapsed = (time.perf_counter() - began) * 1000
                if status != 200:
                    with lock:
                        errors.append(f"{name}: {status}")
                elif i >= WARMUP:
                    mine[name].append(elapsed)
                if pause:
                    time.sleep(pause)
        with lock:
            for name, values in mine.items():
                latencies[name].extend(values)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.monotonic() - began


def main() -> None:
    _cluster.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=5000, help="per client")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--history", type=int, default=20, help="finished batches listed too")
    parser.add_argument("--pause-ms", type=float, default=0.0, help="each client, after an answer")
    parser.add_argument("--profile", type=Path, help="py-spy the web tree into this folder")
    args = parser.parse_args()

    # Enough requests to keep the batch running through the window (and its set-up) twice over.
    lines = max(200, int(2 * (args.duration + 10) * 1000 / DELAY_MS))
    env = _cluster.fake_env(
        API_THROTTLE_RATE="off",
        BATCH_CHUNK_SIZE=str(CHUNK),
        FAKE_DELAY_PER_REQUEST_MS=str(DELAY_MS),
    )
    _cluster.ensure_database(env["DATABASE_URL"])
    key = _cluster.prepare(env)  # a fresh key: it sees only this script's batches
    _cluster.register_fake_model(env)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    print(
        f"{args.clients} clients, {args.duration:g} s per run, gunicorn {args.web_workers} sync "
        f"workers, throttling off, running batch of {lines} requests at {DELAY_MS} ms each, "
        f"logs in {log_dir}",
        flush=True,
    )
    results = []
    web = worker = None
    try:
        web, url = _cluster.start_web(env, log_dir, workers=args.web_workers)
        worker = _cluster.start_worker(env, log_dir)
        client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)
        # Finished batches for the list to show (its default page is 20).
        history = [start_batch(client, 4) for _ in range(args.history)]
        for batch in history:
            wait(client, batch.id, lambda s: s in ENDED)
        for run in range(1, args.runs + 1):
            batch = start_batch(client, lines)
            wait(client, batch.id, lambda s: s != "validating")
            profiler = None
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                profiler = _cluster.Profiler(web.popen.pid, args.profile / f"web-{run}.txt")
            try:
                latencies, errors, seconds = measure(
                    url,
                    key,
                    batch.id,
                    args.clients,
                    args.duration,
                    args.max_requests,
                    args.pause_ms / 1000,
                )
            finally:
                if profiler is not None:
                    profiler.stop()
            still = client.batches.retrieve(batch.id).status
            if errors:
                raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[:5]}")
            if still != "in_progress":
                raise RuntimeError(f"the batch was {still} at the end of the window")
            client.batches.cancel(batch.id)
            wait(client, batch.id, lambda s: s in ENDED)
            figures = {}
            for name, values in latencies.items():
                figures[f"{name}_p50"] = percentile(values, 50)
                figures[f"{name}_p99"] = percentile(values, 99)
                figures[f"{name}_max"] = max(values)
                figures[f"{name}_rps"] = len(values) / seconds
            results.append(figures)
            print(
                f"run {run}: "
                + "; ".join(
                    f"{name} {len(values)} requests ({len(values) / seconds:.0f}/s) "
                    f"p50 {figures[name + '_p50']:.1f} ms p99 {figures[name + '_p99']:.1f} ms "
                    f"max {figures[name + '_max']:.1f} ms"
                    for name, values in latencies.items()
                ),
                flush=True,
            )
    finally:
        for process in (worker, web):
            if process is not None:
                process.stop()
    report(args, results)


def report(args, results: list[dict[str, float]]) -> None:
    def col(name: str) -> list[float]:
        return [r[name] for r in results]

    pause = f", {args.pause_ms:g} ms pause after each answer" if args.pause_ms else ", back to back"
    print(
        f"\n{args.clients} clients{pause}, {args.runs} runs of {args.duration:g} s:"
        " median (min, max)"
    )
    for name, label in (("retrieve", "GET /v1/batches/{id}"), ("list", "GET /v1/batches")):
        print(f"  {label}")
        print(f"    p50 ms:        {spread(col(name + '_p50'))}")
        print(f"    p99 ms:        {spread(col(name + '_p99'))}")
        print(f"    max ms:        {spread(col(name + '_max'))}")
        print(f"    requests/s:    {spread(col(name + '_rps'), '{:.0f}')}")
    worst = max(statistics.median(col(n + "_p99")) for n in ("retrieve", "list"))
    print(f"  goal p99 <= 100 ms: worst median p99 {worst:.1f} ms")


if __name__ == "__main__":
    main()
