"""Engine efficiency: the same chat requests through `vllm run-batch` and through this server.

(a) ``python -m vllm.entrypoints.openai.run_batch`` on a JSONL file: one process, load + run.
(b) this server end to end: upload with the openai SDK, create the batch, poll until completed,
    with a worker started for each run and the batch sent at once (its warm start and the
    batch race: both sides include loading the model);
(c) a second batch on the same worker (engine loaded);
(d) a freshly started worker whose warm start has loaded the model before the batch is sent
    (``--no-fresh-ready`` skips it).
Prints output tokens/s of each, their ratio, and the server's warm figure (second batch on a
worker whose engine is already loaded). Usage:

    .venv/bin/python bench/engine_efficiency.py [--requests 256] [--runs 3] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _cluster  # noqa: E402

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
TOPICS = [
    "the sea",
    "a city at night",
    "bread",
    "a robot",
    "winter",
    "a library",
    "coffee",
    "a mountain",
    "the moon",
    "a garden",
    "trains",
    "a cat",
]


def requests(n: int, max_tokens: int) -> list[dict]:
    return [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "temperature": 0,
                "max_tokens": max_tokens,
                "messages": [
                    {
                        "role": "user",
                        "content": f"Write a short story ({i}) about {TOPICS[i % len(TOPICS)]}.",
                    }
                ],
            },
        }
        for i in range(n)
    ]


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    cpus = sorted(os.sched_getaffinity(0))
    env.update(
        HF_HUB_OFFLINE="1",
        VLLM_CPU_KVCACHE_SPACE="2",
        VLLM_NO_USAGE_STATS="1",
        VLLM_CPU_OMP_THREADS_BIND=f"{cpus[0]}-{cpus[-1]}",
    )
    return env


def run_batch_direct(lines: list[dict], model_path: str) -> tuple[float, int]:
    """Wall seconds and output tokens of one `run_batch` command (load included)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.jsonl"), Path(tmp, "out.jsonl")
        src.write_text("".join(json.dumps(x) + "\n" for x in lines))
        started = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "vllm.entrypoints.openai.run_batch",
                "-i",
                str(src),
                "-o",
                str(dst),
                "--model",
                model_path,
                "--served-model-name",
                MODEL,
                "--dtype",
                "float32",
                "--enforce-eager",
                "--max-model-len",
                "2048",
            ],
            env=engine_env(),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seconds = time.monotonic() - started
        out = [json.loads(x) for x in dst.read_text().splitlines()]
    tokens = sum(
        x["response"]["body"]["usage"]["completion_tokens"]
        for x in out
        if x["response"] and x["response"]["status_code"] == 200
    )
    return seconds, tokens


def server_batch(client: OpenAI, lines: list[dict]) -> tuple[float, int]:
    """Wall seconds from upload to completed, and output tokens, through the SDK."""
    started = time.monotonic()
    content = "".join(json.dumps(x) + "\n" for x in lines).encode()
    file = client.files.create(file=("bench.jsonl", content), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        time.sleep(0.25)
        batch = client.batches.retrieve(batch.id)
    seconds = time.monotonic() - started
    if batch.status != "completed" or batch.request_counts.failed:
        raise RuntimeError(f"batch ended {batch.status} with {batch.request_counts}")
    return seconds, batch.usage.output_tokens


def main() -> None:
    # Ctrl-C or SIGTERM still runs the clean-up below (servers are stopped, nothing left).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument(
        "--fresh-ready",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also (d): a fresh worker, the batch sent once its warm start loaded the model",
    )
    args = parser.parse_args()
    lines = requests(args.requests, args.max_tokens)

    env = _cluster.bench_env(BATCHSERVER_ENGINE="vllm", BATCH_CHUNK_SIZE=str(args.requests))
    _cluster.ensure_database(env["DATABASE_URL"])
    key = _cluster.prepare(env)
    _cluster.manage("setup_default_model", env=env)
    models = env.get("BATCHSERVER_MODELS_DIR") or Path(env["BATCHSERVER_DATA_DIR"]) / "models"
    model_path = str(Path(models) / "SmolLM2-135M-Instruct")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    web, url = _cluster.start_web(env, log_dir)
    client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    direct, cold, warm, ready = [], [], [], []
    try:
        for run in range(1, args.runs + 1):
            seconds, tokens = run_batch_direct(lines, model_path)
            direct.append(tokens / seconds)
            print(
                f"run {run}: run_batch   {seconds:6.1f} s {tokens:6d} tokens "
                f"{tokens / seconds:7.1f} tok/s",
                flush=True,
            )
            worker = _cluster.start_worker(env, log_dir)
            try:
                for label, sink in (("server cold", cold), ("server warm", warm)):
                    seconds, tokens = server_batch(client, lines)
                    sink.append(tokens / seconds)
                    print(
                        f"run {run}: {label} {seconds:6.1f} s {tokens:6d} tokens "
                        f"{tokens / seconds:7.1f} tok/s",
                        flush=True,
                    )
            finally:
                worker.stop()
            if args.fresh_ready:
                fresh_ready(env, log_dir, client, lines, run, ready)
    finally:
        web.stop()
    report(args, direct, cold, warm, ready)


def fresh_ready(env, log_dir: Path, client: OpenAI, lines: list[dict], run: int, sink) -> None:
    """(d) A freshly started worker whose warm start has loaded the model before the batch."""
    name = f"worker-ready-{run}"
    worker = _cluster.start_worker(env, log_dir, name)
    try:
        deadline = time.monotonic() + 1800
        while (
            b"engine: " + MODEL.encode() + b" loaded in"
            not in (log_dir / f"{name}.log").read_bytes()
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no warm start within 30 minutes; see {log_dir / name}.log")
            time.sleep(0.5)
        seconds, tokens = server_batch(client, lines)
        sink.append(tokens / seconds)
        print(
            f"run {run}: server fresh, engine ready {seconds:6.1f} s {tokens:6d} tokens "
            f"{tokens / seconds:7.1f} tok/s",
            flush=True,
        )
    finally:
        worker.stop()


def report(
    args, direct: list[float], cold: list[float], warm: list[float], ready: list[float]
) -> None:
    def fmt(values: list[float]) -> str:
        low, high = min(values), max(values)
        return f"median {statistics.median(values):7.1f} (min {low:.1f}, max {high:.1f})"

    ratio_cold = statistics.median(cold) / statistics.median(direct)
    ratio_warm = statistics.median(warm) / statistics.median(direct)
    print(
        f"\n{args.requests} chat requests, max_tokens {args.max_tokens}, {args.runs} runs; "
        "output tokens/s"
    )
    print(f"  vllm run_batch (load included):   {fmt(direct)}")
    print(f"  server end to end, cold worker:   {fmt(cold)}")
    print(f"  server end to end, warm engine:   {fmt(warm)}")
    print(f"  ratio server cold / run_batch:    {ratio_cold:.3f}")
    print(f"  ratio server warm / run_batch:    {ratio_warm:.3f}")
    if ready:
        print(f"  server, fresh worker, warm-started: {fmt(ready)}")
        ratio_ready = statistics.median(ready) / statistics.median(direct)
        print(f"  ratio fresh warm-started / run_batch: {ratio_ready:.3f}")


if __name__ == "__main__":
    main()
