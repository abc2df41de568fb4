"""Upload and validation of a large input file (default 50,000 lines, just under 200 MB).

Per run, on a fresh web server (gunicorn) and worker (qcluster) on the fake engine:
(1) upload the file with the openai SDK; (2) ``POST /v1/batches/dry_run`` on it, which runs the
batch validation inside the web process; (3) create the batch and poll until it leaves
``validating`` (the worker validates every line and inserts one row per request), then cancel it.
Prints seconds of each step and the peak RSS of the web processes (master + workers; the
largest single process is "the web process") and of the worker tree, sampled every 0.2 s.
Usage:

    .venv/bin/python bench/upload_validation.py [--lines 50000] [--megabytes 199] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from openai import ConflictError, OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _cluster  # noqa: E402
from bench._cluster import MB, spread  # noqa: E402

ENDED = ("completed", "failed", "expired", "cancelled")
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards box liquor jugs".split()


def write_input(path: Path, lines: int, megabytes: float) -> int:
    """Write ``lines`` chat requests whose long prompts make the file about ``megabytes`` MB."""
    target = int(megabytes * MB)

    def line(i: int, content: str) -> str:
        body = {
            "model": _cluster.FAKE_MODEL,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": content}],
        }
        record = {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions"}
        return json.dumps({**record, "body": body}) + "\n"

    overhead = len(line(lines - 1, ""))
    per_line = max(1, target // lines - overhead)
    text = " ".join(WORDS[i % len(WORDS)] for i in range(per_line))  # longer than needed
    with path.open("w") as out:
        for i in range(lines):
            out.write(line(i, f"{i} {text}"[:per_line]))
    return path.stat().st_size


def one_run(url: str, key: str, path: Path, lines: int, web_rss, worker_rss) -> dict[str, float]:
    client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=600)
    figures: dict[str, float] = {}

    started = time.monotonic()
    with path.open("rb") as handle:
        file = client.files.create(file=(path.name, handle), purpose="batch")
    figures["upload"] = time.monotonic() - started
    figures["web_upload"] = web_rss.take()[1] / MB
    worker_rss.take()

    started = time.monotonic()
    answer = httpx.post(
        f"{url}/v1/batches/dry_run",
        headers={"Authorization": f"Bearer {key}"},
        json={"input_file_id": file.id, "endpoint": "/v1/chat/completions"},
        timeout=600,
    )
    figures["dry_run"] = time.monotonic() - started
    answer.raise_for_status()
    if answer.json()["valid_lines"] != lines:
        raise RuntimeError(f"dry run: {answer.text[:500]}")
    figures["web_dry_run"] = web_rss.take()[1] / MB
    worker_rss.take()

    started = time.monotonic()
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    while batch.status == "validating":
        time.sleep(0.1)
        batch = client.batches.retrieve(batch.id)
    figures["validate"] = time.monotonic() - started
    if batch.status not in ("in_progress", "finalizing", "completed"):
        raise RuntimeError(f"batch {batch.id} left validating as {batch.status}: {batch.errors}")
    figures["web_validate"] = web_rss.take()[1] / MB
    figures["worker_validate_total"], figures["worker_validate"] = (
        x / MB for x in worker_rss.take()
    )
    figures["upload_and_validate"] = figures["upload"] + figures["validate"]

    # Not measured: stop the run so that the next run starts on a quiet machine.
    try:
        client.batches.cancel(batch.id)
    except ConflictError:  # it finished in the meantime
        pass
    deadline = time.monotonic() + 300
    while batch.status not in ENDED and time.monotonic() < deadline:
        time.sleep(0.5)
        batch = client.batches.retrieve(batch.id)
    return figures


def main() -> None:
    _cluster.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--megabytes", type=float, default=199.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument(
        "--profile", type=Path, help="py-spy the web and worker trees into this folder"
    )
    args = parser.parse_args()

    env = _cluster.fake_env(API_THROTTLE_RATE="off")
    _cluster.ensure_database(env["DATABASE_URL"])
    key = _cluster.prepare(env)
    _cluster.register_fake_model(env)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    path = log_dir / "input.jsonl"
    size = write_input(path, args.lines, args.megabytes)
    print(
        f"{args.lines} lines, {size / MB:.1f} MB ({size} bytes), {args.web_workers} web workers, "
        f"logs in {log_dir}",
        flush=True,
    )
    results = []
    try:
        for run in range(1, args.runs + 1):
            with _cluster.measured_servers(
                env, log_dir, web_workers=args.web_workers, profile_dir=args.profile, run=run
            ) as servers:
                url, web_rss, worker_rss = servers
                figures = one_run(url, key, path, args.lines, web_rss, worker_rss)
            results.append(figures)
            print(
                f"run {run}: upload {figures['upload']:.2f} s (web peak "
                f"{figures['web_upload']:.0f} MB), dry run {figures['dry_run']:.2f} s (web peak "
                f"{figures['web_dry_run']:.0f} MB), create -> in_progress "
                f"{figures['validate']:.2f} s (worker peak {figures['worker_validate']:.0f} MB, "
                f"web peak {figures['web_validate']:.0f} MB)",
                flush=True,
            )
    finally:
        path.unlink(missing_ok=True)
    report(args, size, results)


def report(args, size: int, results: list[dict[str, float]]) -> None:
    def col(name: str) -> list[float]:
        return [r[name] for r in results]

    print(f"\n{args.lines} lines, {size / MB:.1f} MB, {args.runs} runs: median (min, max)")
    rows = [
        ("upload seconds (SDK files.create)", "upload", "{:.2f}"),
        ("dry run seconds (web validates)", "dry_run", "{:.2f}"),
        ("create -> in_progress seconds", "validate", "{:.2f}"),
        ("upload + validation seconds", "upload_and_validate", "{:.2f}"),
        ("web process peak RSS, upload, MB", "web_upload", "{:.0f}"),
        ("web process peak RSS, dry run, MB", "web_dry_run", "{:.0f}"),
        ("web process peak RSS, validation", "web_validate", "{:.0f}"),
        ("worker process peak RSS, valid.", "worker_validate", "{:.0f}"),
        ("worker tree peak RSS, validation", "worker_validate_total", "{:.0f}"),
    ]
    for label, name, fmt in rows:
        print(f"  {label + ':':38}{spread(col(name), fmt)}")
    web_peak = max(statistics.median(col(n)) for n in ("web_upload", "web_dry_run"))
    print(
        f"  goal <= 10 s upload + validation: median "
        f"{statistics.median(col('upload_and_validate')):.2f} s; "
        f"goal < 200 MB web process: median peak {web_peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
