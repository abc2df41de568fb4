"""From a fine-tuning job's ``succeeded`` to the first answer of its new model (issue #12).

The requirement: that time is one model load. On a real web server and worker (vLLM engine,
SmolLM2) whose warm start has loaded the base model, as in production, each run:

1. fine-tunes SmolLM2 on 12 examples (1 epoch, batch 4) through the openai SDK;
2. polls the job every 0.1 s; at the first ``succeeded`` it sees, sends a batch of one chat
   request naming the new model, and polls it every 0.1 s until ``completed``;
3. reads the worker's log: every model load between the training's end and that answer
   (``engine: <model> loaded in N s``), and the new model's load time.

Prints, per run, the wall time from ``succeeded`` to the completed batch, the loads in between
and their seconds, and the median over the runs. ``--old`` starts the worker with
``FINETUNE_LOAD_RESULT=0`` (what the worker did before: load the previous model again after the
training) to show the difference.

    BENCH_DATABASE_URL=postgres://…/<name>bench flock /tmp/engine.lock \
        .venv/bin/python bench/finetune_first_answer.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _cluster  # noqa: E402

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
LOADED = re.compile(r"engine: (?P<model>\S+) loaded in (?P<seconds>[\d.]+) s")
SHUTDOWN = "engine: shutting down"
TRAINING = [
    {
        "messages": [
            {"role": "user", "content": f"What is the code word number {i}?"},
            {"role": "assistant", "content": f"The code word number {i} is PELICAN."},
        ]
    }
    for i in range(12)
]


def wait_for_line(log: Path, text: str, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while text.encode() not in log.read_bytes():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{text!r} not in {log} after {timeout:.0f} s")
        time.sleep(0.2)


def fine_tune(client: OpenAI, run: int) -> tuple[str, float]:
    """Create a job, poll it every 0.1 s; its model and the moment ``succeeded`` was seen."""
    content = "".join(json.dumps(x) + "\n" for x in TRAINING).encode()
    training = client.files.create(file=("train.jsonl", content), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=MODEL,
        training_file=training.id,
        suffix=f"first{run}",
        seed=run,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 4}},
        },
    )
    deadline = time.monotonic() + 1800
    while job.status not in ("succeeded", "failed", "cancelled"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job.id} still {job.status} after 30 minutes")
        time.sleep(0.1)
        job = client.fine_tuning.jobs.retrieve(job.id)
    seen = time.monotonic()
    if job.status != "succeeded":
        raise RuntimeError(f"job {job.id} ended {job.status}: {job.error}")
    return job.fine_tuned_model or "", seen


def first_answer(client: OpenAI, model: str) -> float:
    """Send one chat request naming ``model`` as a batch; the moment it is completed."""
    line = {
        "custom_id": "first",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": model,
            "temperature": 0,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "What is the code word number 3?"}],
        },
    }
    file = client.files.create(file=("first.jsonl", json.dumps(line).encode()), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        time.sleep(0.1)
        batch = client.batches.retrieve(batch.id)
    if batch.status != "completed" or batch.request_counts.completed != 1:
        raise RuntimeError(f"batch {batch.id} ended {batch.status}: {batch.request_counts}")
    return time.monotonic()


def loads_after_training(text: str) -> list[tuple[str, float]]:
    """Model loads in the worker log after the engine was stopped for the training."""
    stopped = text.find(SHUTDOWN)
    if stopped < 0:
        raise RuntimeError("the worker never stopped its engine for the training")
    return [(m["model"], float(m["seconds"])) for m in LOADED.finditer(text, stopped)]


def one_run(client: OpenAI, worker_log: Path, run: int) -> dict:
    offset = worker_log.stat().st_size
    model, succeeded = fine_tune(client, run)
    answered = first_answer(client, model)
    text = worker_log.read_bytes()[offset:].decode(errors="replace")
    loads = loads_after_training(text)
    new_model = [seconds for name, seconds in loads if name == model]
    return {
        "wall": answered - succeeded,
        "loads": loads,
        "new_model_load": new_model[-1] if new_model else None,
    }


def main() -> None:
    _cluster.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--old", action="store_true", help="FINETUNE_LOAD_RESULT=0: reload the previous model"
    )
    args = parser.parse_args()
    env = _cluster.bench_env(
        BATCHSERVER_ENGINE="vllm",
        FINETUNE_LOAD_RESULT="0" if args.old else "1",
        WORKER_WARM_MODEL=MODEL,
    )
    _cluster.ensure_database(env["DATABASE_URL"])
    key = _cluster.prepare(env)
    _cluster.manage("setup_default_model", env=env)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-ft-first-"))
    web, url = _cluster.start_web(env, log_dir)
    worker = None
    results = []
    try:
        worker = _cluster.start_worker(env, log_dir)
        wait_for_line(worker.log, f"engine: {MODEL} loaded in")  # the warm start, as in production
        client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        for run in range(1, args.runs + 1):
            result = one_run(client, worker.log, run)
            results.append(result)
            loads = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result["loads"])
            print(
                f"run {run}: succeeded -> first answer {result['wall']:.1f} s; "
                f"{len(result['loads'])} load(s) after the training: {loads}",
                flush=True,
            )
    finally:
        if worker is not None:
            worker.stop()
        web.stop()
    walls = [r["wall"] for r in results]
    new_loads = [r["new_model_load"] for r in results if r["new_model_load"] is not None]
    print(
        json.dumps(
            {
                "mode": "old: previous model reloaded" if args.old else "new model loaded",
                "succeeded_to_first_answer_s": round(statistics.median(walls), 1),
                "new_model_load_s": round(statistics.median(new_loads), 1) if new_loads else None,
                "loads_after_training": [len(r["loads"]) for r in results],
                "runs": args.runs,
                "logs": str(log_dir),
            }
        )
    )


if __name__ == "__main__":
    main()
