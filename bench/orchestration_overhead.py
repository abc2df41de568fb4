"""Orchestration overhead: one batch end to end on the instant fake engine, on PostgreSQL.

Upload (openai SDK) -> create the batch -> validation -> run -> output file ready (``completed``),
timed from the client. Web (gunicorn master + workers) and worker (qcluster process tree) are
started fresh for each run, and the RSS of each tree is sampled every 0.2 s. Prints wall time,
requests/s and peak RSS per run, then the median and spread. Usage:

    .venv/bin/python bench/orchestration_overhead.py [--requests 50000] [--runs 3]
        [--chunk-size 1000] [--web-workers 2] [--plugins none|shipped]

``--plugins shipped`` enables every plugin installed from an entry point (the three of
``plugins/contrib``) before the runs; ``none`` (the default) disables every plugin. The batch
itself names no plugin, as most batches do: what is measured is what enabled plugins cost the
batches that do not use them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _cluster  # noqa: E402
from bench._cluster import MB, spread  # noqa: E402

ENDED = ("completed", "failed", "expired", "cancelled")


def input_file(n: int) -> bytes:
    lines = (
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": _cluster.FAKE_MODEL,
                "max_tokens": 16,
                "messages": [{"role": "user", "content": f"Question number {i}: what is {i}+1?"}],
            },
        }
        for i in range(n)
    )
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def one_run(url: str, key: str, content: bytes, n: int) -> dict[str, float]:
    """Seconds of each phase as the client sees them, and in all."""
    client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=600)
    started = time.monotonic()
    file = client.files.create(file=("bench.jsonl", content), purpose="batch")
    uploaded = time.monotonic()
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    seen: dict[str, float] = {}
    while batch.status not in ENDED:
        time.sleep(0.1)
        batch = client.batches.retrieve(batch.id)
        seen.setdefault(batch.status, time.monotonic())
    ended = time.monotonic()
    if batch.status != "completed" or batch.request_counts.completed != n:
        raise RuntimeError(f"batch {batch.id} ended {batch.status} with {batch.request_counts}")
    # Outside the timing: the output file really holds one line per request.
    lines = client.files.content(batch.output_file_id).text.count("\n")
    if lines != n:
        raise RuntimeError(f"output file has {lines} lines, expected {n}")
    running = seen.get("in_progress", uploaded)
    return {
        "wall": ended - started,
        "upload": uploaded - started,
        "validate": running - uploaded,
        "run": seen.get("finalizing", ended) - running,
        "finalize": ended - seen.get("finalizing", ended),
    }


def set_plugins(env: dict[str, str], which: str) -> str:
    """Enable the shipped plugins (``shipped``) or disable every plugin (``none``)."""
    code = (
        "from plugins import services as s\n"
        "on = []\n"
        "for p in s.list_plugins():\n"
        f"    if {which!r} == 'shipped' and p['loadable'] and p['source'].startswith('entry'):\n"
        "        s.enable(p['id']); on.append(p['id'])\n"
        "    elif p['enabled']:\n"
        "        s.disable(p['id'], 'benchmark')\n"
        "print(','.join(sorted(on)))\n"
    )
    out = _cluster.manage("shell", "-c", code, env=env).strip()
    return out.splitlines()[-1] if out else ""  # (the shell may print its auto-imports first)


def main() -> None:
    _cluster.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--plugins", choices=("none", "shipped"), default="none")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the web and worker trees into this folder"
    )
    args = parser.parse_args()

    env = _cluster.fake_env(BATCH_CHUNK_SIZE=str(args.chunk_size), API_THROTTLE_RATE="off")
    _cluster.ensure_database(env["DATABASE_URL"])
    key = _cluster.prepare(env)
    _cluster.register_fake_model(env)
    enabled = set_plugins(env, args.plugins)
    content = input_file(args.requests)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    print(
        f"{args.requests} requests ({len(content) / MB:.1f} MB), chunk size {args.chunk_size}, "
        f"{args.web_workers} web workers, plugins enabled: {enabled or 'none'}, logs in {log_dir}",
        flush=True,
    )
    results: list[dict[str, float]] = []
    for run in range(1, args.runs + 1):
        with _cluster.measured_servers(
            env, log_dir, web_workers=args.web_workers, profile_dir=args.profile, run=run
        ) as servers:
            url, web_rss, worker_rss = servers
            web_rss.take(), worker_rss.take()  # start measuring from here
            figures = one_run(url, key, content, args.requests)
            figures["web_total"], figures["web_largest"] = (x / MB for x in web_rss.take())
            figures["worker_total"], figures["worker_largest"] = (x / MB for x in worker_rss.take())
        figures["rps"] = args.requests / figures["wall"]
        results.append(figures)
        print(
            f"run {run}: {figures['wall']:7.2f} s {figures['rps']:8.0f} req/s "
            f"(upload {figures['upload']:.2f} s, validate {figures['validate']:.2f} s, "
            f"run {figures['run']:.2f} s, finalize {figures['finalize']:.2f} s); "
            f"peak RSS web {figures['web_total']:.0f} MB (largest process "
            f"{figures['web_largest']:.0f} MB), worker {figures['worker_total']:.0f} MB "
            f"(largest process {figures['worker_largest']:.0f} MB)",
            flush=True,
        )
    report(args, results)


def report(args, results: list[dict[str, float]]) -> None:
    def col(name: str) -> list[float]:
        return [r[name] for r in results]

    print(f"\n{args.requests} requests, {args.runs} runs: median (min, max)")
    print(f"  wall seconds, end to end:        {spread(col('wall'), '{:.2f}')}")
    print(f"  requests/s, end to end:          {spread(col('rps'), '{:.0f}')}")
    for phase in ("upload", "validate", "run", "finalize"):
        print(f"  {phase + ' seconds:':33}{spread(col(phase), '{:.2f}')}")
    print(f"  peak RSS web tree, MB:           {spread(col('web_total'), '{:.0f}')}")
    print(f"  peak RSS web, largest process:   {spread(col('web_largest'), '{:.0f}')}")
    print(f"  peak RSS worker tree, MB:        {spread(col('worker_total'), '{:.0f}')}")
    print(f"  peak RSS worker, largest proc.:  {spread(col('worker_largest'), '{:.0f}')}")
    print(f"  goal >= 5000 req/s end to end:   median {statistics.median(col('rps')):.0f}")


if __name__ == "__main__":
    main()
