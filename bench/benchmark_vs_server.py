"""A benchmark run's throughput against engine_efficiency.py's server figure, same prompts.

For each run: a fresh worker (vLLM) takes engine_efficiency.py's two server batches (cold:
the model load is inside its time; warm: the engine is loaded), then another fresh worker runs
``manage.py run_benchmark`` on the same prompts with two repetitions (the first cold, the
second warm). Prints output tokens/s of each and the ratios; the issue requires the benchmark's
figure within 5 % of the server's. Usage:

    .venv/bin/python bench/benchmark_vs_server.py [--requests 256] [--runs 2] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import sys
import tempfile
from pathlib import Path

from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _cluster  # noqa: E402
from bench.engine_efficiency import MODEL, requests, server_batch  # noqa: E402

REPETITION = re.compile(r"repetition (\d) \(\S+\): (\d+) tokens in ([\d.]+) s = ([\d.]+) tok/s")


def dataset_file(lines: list[dict], folder: Path) -> Path:
    """engine_efficiency.py's requests as a benchmark dataset (same messages, same order)."""
    path = folder / "engine-efficiency-prompts.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": x["custom_id"], "messages": x["body"]["messages"]}) + "\n"
            for x in lines
        )
    )
    return path


def benchmark(env: dict[str, str], dataset: Path, max_tokens: int) -> list[float]:
    """Output tok/s of repetition 1 (cold) and 2 (warm) of one benchmark run."""
    out = _cluster.manage(
        "run_benchmark",
        "--dataset",
        str(dataset),
        "--model",
        MODEL,
        "--max-tokens",
        str(max_tokens),
        "--temperature",
        "0",
        "--repetitions",
        "2",
        "--scorer",
        "contains",
        env=env,
    )
    print(out, flush=True)
    found = {int(m.group(1)): float(m.group(4)) for m in REPETITION.finditer(out)}
    return [found[1], found[2]]


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    lines = requests(args.requests, args.max_tokens)
    env = _cluster.bench_env(BATCHSERVER_ENGINE="vllm", BATCH_CHUNK_SIZE=str(args.requests))
    _cluster.ensure_database(env["DATABASE_URL"])
    key = _cluster.prepare(env)
    _cluster.manage("setup_default_model", env=env)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-vs-server-"))
    dataset = dataset_file(lines, log_dir)
    web, url = _cluster.start_web(env, log_dir)
    client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    figures: dict[str, list[float]] = {
        "server cold": [],
        "server warm": [],
        "bench cold": [],
        "bench warm": [],
    }
    try:
        for run in range(1, args.runs + 1):
            worker = _cluster.start_worker(env, log_dir, name=f"worker-server-{run}")
            try:
                for label in ("server cold", "server warm"):
                    seconds, tokens = server_batch(client, lines)
                    figures[label].append(tokens / seconds)
                    print(f"run {run}: {label} {tokens / seconds:7.1f} tok/s", flush=True)
            finally:
                worker.stop()
            worker = _cluster.start_worker(env, log_dir, name=f"worker-bench-{run}")
            try:
                cold, warm = benchmark(env, dataset, args.max_tokens)
            finally:
                worker.stop()
            figures["bench cold"].append(cold)
            figures["bench warm"].append(warm)
            print(f"run {run}: bench cold {cold:7.1f} tok/s, warm {warm:7.1f} tok/s", flush=True)
    finally:
        web.stop()
    print(
        f"\n{args.requests} chat requests, max_tokens {args.max_tokens}, {args.runs} runs; "
        "output tokens/s, median (min, max)"
    )
    for label, values in figures.items():
        print(
            f"  {label:12s} {statistics.median(values):7.1f} ({min(values):.1f}, {max(values):.1f})"
        )
    for kind in ("cold", "warm"):
        ratio = statistics.median(figures[f"bench {kind}"]) / statistics.median(
            figures[f"server {kind}"]
        )
        print(f"  ratio benchmark / server, {kind}: {ratio:.3f}")


if __name__ == "__main__":
    main()
