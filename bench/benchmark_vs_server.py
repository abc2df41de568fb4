"""A benchmark run's throughput against engine_efficiency.py's server figure, same prompts.

One worker (vLLM) loads the model with a first batch (not counted); then, alternating on that
warm engine, engine_efficiency.py's server batch (upload, create, poll until completed, through
the SDK) and ``manage.py run_benchmark`` on the same prompts (one repetition), ``--runs``
times, so both meet the same machine. With ``--cold``, each side also runs once per round on a
freshly started worker (the model load inside its time). Prints output tokens/s and the
ratios; the issue requires the benchmark's figure within 5 % of the server's. Usage:

    .venv/bin/python bench/benchmark_vs_server.py [--requests 256] [--runs 3] [--cold]
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


def benchmark(env: dict[str, str], dataset: Path, max_tokens: int) -> float:
    """Output tok/s of a one-repetition benchmark run of the model on the dataset's prompts."""
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
        "--scorer",
        "contains",
        env=env,
    )
    print(out, flush=True)
    return float(REPETITION.search(out).group(4))


def batch_clock_seconds(env: dict[str, str]) -> float:
    """The newest batch's own clock, creation to end: the one a benchmark's figure uses."""
    out = _cluster.manage(
        "shell",
        "-c",
        "from jobs.models import Batch; b = Batch.objects.order_by('-created_at').first(); "
        "print((b.completed_at - b.created_at).total_seconds())",
        env=env,
    )
    return float(out.strip().splitlines()[-1])


def warm_rounds(env, client, lines, dataset, args, figures, log_dir) -> None:
    worker = _cluster.start_worker(env, log_dir, name="worker-warm")
    try:
        server_batch(client, lines)  # loads the model: not counted
        for run in range(1, args.runs + 1):
            seconds, tokens = server_batch(client, lines)
            figures["server warm"].append(tokens / seconds)
            figures["server warm, batch clock"].append(tokens / batch_clock_seconds(env))
            figures["bench warm"].append(benchmark(env, dataset, args.max_tokens))
            print(
                f"run {run}: warm: server {figures['server warm'][-1]:7.1f} tok/s "
                f"({figures['server warm, batch clock'][-1]:.1f} by the batch's clock), "
                f"benchmark {figures['bench warm'][-1]:7.1f} tok/s",
                flush=True,
            )
    finally:
        worker.stop()


def cold_rounds(env, client, lines, dataset, args, figures, log_dir) -> None:
    for run in range(1, args.runs + 1):
        worker = _cluster.start_worker(env, log_dir, name=f"worker-cold-server-{run}")
        try:
            seconds, tokens = server_batch(client, lines)
            figures["server cold"].append(tokens / seconds)
        finally:
            worker.stop()
        worker = _cluster.start_worker(env, log_dir, name=f"worker-cold-bench-{run}")
        try:
            figures["bench cold"].append(benchmark(env, dataset, args.max_tokens))
        finally:
            worker.stop()
        print(
            f"run {run}: cold: server {figures['server cold'][-1]:7.1f} tok/s, "
            f"benchmark {figures['bench cold'][-1]:7.1f} tok/s",
            flush=True,
        )


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--cold", action="store_true", help="also compare cold workers")
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
        "server warm": [],
        "server warm, batch clock": [],
        "bench warm": [],
        "server cold": [],
        "bench cold": [],
    }
    try:
        warm_rounds(env, client, lines, dataset, args, figures, log_dir)
        if args.cold:
            cold_rounds(env, client, lines, dataset, args, figures, log_dir)
    finally:
        web.stop()
    print(
        f"\n{args.requests} chat requests, max_tokens {args.max_tokens}, {args.runs} runs; "
        "output tokens/s, median (min, max)"
    )
    for label, values in figures.items():
        if values:
            print(
                f"  {label:24s} {statistics.median(values):7.1f} "
                f"({min(values):.1f}, {max(values):.1f})"
            )
    for kind in ("warm", "cold"):
        if figures[f"bench {kind}"]:
            ratio = statistics.median(figures[f"bench {kind}"]) / statistics.median(
                figures[f"server {kind}"]
            )
            print(f"  ratio benchmark / server, {kind}: {ratio:.3f}")
    if figures["server warm, batch clock"]:
        ratio = statistics.median(figures["bench warm"]) / statistics.median(
            figures["server warm, batch clock"]
        )
        print(f"  ratio benchmark / server by the same (batch's) clock, warm: {ratio:.3f}")


if __name__ == "__main__":
    main()
