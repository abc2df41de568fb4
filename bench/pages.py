"""Console page latency with 10,000 finished batches and 1,000,000 request rows.

The database is filled in SQL (``INSERT … SELECT generate_series``, no Python per row): 10,000
finished batches (100 request rows and one chunk each, ended over the last 30 days, one in 20
failed), 50 active ones, a week of dashboard samples (one a minute), a full log store
(100,000 lines), audit entries, two workers. Then a gunicorn server (``--web-workers``, DEBUG
off) answers every console page for a logged-in staff user: ``--requests`` sequential GETs per
page after ``--warmup``, and p50 / p95 / max per page are printed (``--json`` for the figures).

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/pages_bench \\
        .venv/bin/python bench/pages.py [--batches 10000] [--rows-per-batch 100] [--requests 40]
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

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _cluster  # noqa: E402

LIMIT_MS = 300.0
PASSWORD = "bench-password-123"


def seed(url: str, batches: int, per_batch: int, key_id: int) -> dict[str, str]:
    """Fill the tables; returns ids the pages need (a batch, its correlation id)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO jobs_file (id, purpose, filename, bytes, content, created_at, owner_id,
                   line_count)
               VALUES ('file-bench-input', 'batch', 'input.jsonl', 1000, 'x/input.jsonl', now(),
                   %s, 100)""",
            [key_id],
        )
        conn.execute(
            """INSERT INTO jobs_batch (id, endpoint, completion_window, status, created_at,
                   in_progress_at, completed_at, failed_at, expires_at, request_total,
                   request_completed, request_failed, model, input_tokens, output_tokens,
                   priority, note, owner_id, input_file_id, load_failures, correlation_id,
                   paused, webhook_url, metadata)
               SELECT 'batch_bench' || lpad(g::text, 8, '0'), '/v1/chat/completions', '24h',
                   CASE WHEN g %% 20 = 0 THEN 'failed' ELSE 'completed' END,
                   now() - (g || ' minutes')::interval * 4 - interval '10 minutes',
                   now() - (g || ' minutes')::interval * 4 - interval '9 minutes',
                   CASE WHEN g %% 20 = 0 THEN NULL
                        ELSE now() - (g || ' minutes')::interval * 4 END,
                   CASE WHEN g %% 20 = 0 THEN now() - (g || ' minutes')::interval * 4 END,
                   now() + interval '1 day', %s, %s, 0,
                   CASE WHEN g %% 2 = 0 THEN 'fake-model' ELSE 'other-model' END,
                   %s * 20, %s * 40, 0, '', %s, 'file-bench-input', 0, 'corr-' || g, false, '',
                   NULL
               FROM generate_series(1, %s) AS g""",
            [per_batch, per_batch, per_batch, per_batch, key_id, batches],
        )
        conn.execute(
            """INSERT INTO jobs_batch (id, endpoint, completion_window, status, created_at,
                   in_progress_at, expires_at, request_total, request_completed, request_failed,
                   model, input_tokens, output_tokens, priority, note, owner_id, input_file_id,
                   load_failures, correlation_id, paused, webhook_url)
               SELECT 'batch_active' || lpad(g::text, 6, '0'), '/v1/chat/completions', '24h',
                   'in_progress', now() - (g || ' seconds')::interval, now(),
                   now() + interval '1 day', 100, 0, 0, 'fake-model', 0, 0, g %% 3, '', %s,
                   'file-bench-input', 0, 'corr-active-' || g, false, ''
               FROM generate_series(1, 50) AS g""",
            [key_id],
        )
        started = time.monotonic()
        conn.execute(
            """INSERT INTO jobs_batchrequest (batch_id, line, custom_id, chunk, body, status,
                   public_id, request_id, response_status, response_body, input_tokens,
                   output_tokens, finished_at)
               SELECT b.id, r, 'req-' || r, 0,
                   '{"model":"fake-model","messages":[{"role":"user","content":"q ' || r || '"}]}',
                   'completed', 'batch_req_' || md5(b.id || r), 'req_' || md5(r || b.id), 200,
                   '{"choices":[{"message":{"content":"an answer of some length"}}]}', 20, 40,
                   b.completed_at
               FROM jobs_batch b, generate_series(1, %s) AS r
               WHERE b.id LIKE 'batch_bench%%'""",
            [per_batch],
        )
        print(f"  request rows inserted in {time.monotonic() - started:.0f} s", flush=True)
        conn.execute(
            """INSERT INTO jobs_batchchunk (batch_id, index, size, status, worker_id, attempts)
               SELECT id, 0, request_total, 'done', 'gpu-1:100', 1 FROM jobs_batch"""
        )
        conn.execute(
            """INSERT INTO operations_metricsample (at, queued_batches, running_batches,
                   pending_requests, requests_completed, requests_failed, input_tokens,
                   output_tokens, workers_alive, engine_loads, loaded_models, gpus)
               SELECT now() - (m || ' minutes')::interval, m % 7, 1, 500, 1000000 - m * 90,
                   10000 - m, 20000000 - m * 1800, 40000000 - m * 3600, 2, (m % 60 = 0)::int,
                   '["fake-model"]',
                   json_build_array(json_build_object('worker', 'gpu-1:100', 'index', 0,
                       'utilization_percent', 50 + m % 40, 'temperature_celsius', 60 + m % 15,
                       'memory_used_bytes', 20000000000 + m * 1000))
               FROM generate_series(0, 7 * 1440) AS m"""
        )
        conn.execute(
            """INSERT INTO batchserver_logline (at, levelno, level, logger, process, pid,
                   correlation_id, message)
               SELECT now() - (g || ' seconds')::interval,
                   CASE WHEN g % 50 = 0 THEN 30 ELSE 20 END,
                   CASE WHEN g % 50 = 0 THEN 'WARNING' ELSE 'INFO' END, 'jobs.runner',
                   CASE WHEN g % 3 = 0 THEN 'web' ELSE 'worker' END, 100,
                   'corr-' || (g % 10000 + 1),
                   'chunk 0 of batch_bench' || (g % 10000 + 1) || ' done'
               FROM generate_series(1, 100000) AS g"""
        )
        conn.execute(
            """INSERT INTO batchserver_auditentry (at, actor, action, target, detail, ok)
               SELECT now() - (g || ' minutes')::interval, 'ops', 'batch.pause',
                   'batch_bench' || lpad(g::text, 8, '0'), '', true
               FROM generate_series(1, 1000) AS g"""
        )
        conn.execute(
            """INSERT INTO jobs_worker (worker_id, hostname, pid, started_at, last_heartbeat,
                   state, loaded_model, current_batch_id, current_work, requests_done,
                   output_tokens_done, gpu)
               VALUES ('gpu-1:100', 'gpu-1', 100, now(), now() + interval '1 hour', 'running',
                   'fake-model', 'batch_active000001', '', 1000, 40000, NULL),
                      ('gpu-2:200', 'gpu-2', 200, now(), now() - interval '2 hours', 'idle', '',
                   '', '', 0, 0, NULL)"""
        )
        conn.execute("VACUUM ANALYZE")
    return {"batch": "batch_bench00000042", "correlation": "corr-42"}


def login(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30, follow_redirects=False)
    page = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = client.post(
        "/admin/login/?next=/admin/",
        data={"username": "bench", "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{url}/admin/login/"},
    )
    assert answer.status_code == 302, answer.text[:500]
    return client


def pages(ids: dict[str, str]) -> list[str]:
    return [
        "/",
        "/queue",
        "/history",
        "/workers",
        f"/batches/{ids['batch']}",
        "/dashboard",
        "/dashboard?hours=168",
        "/settings",
        "/config",
        "/logs",
        f"/logs?batch={ids['batch']}",
        "/logs?level=WARNING&q=batch_bench42",
        "/model-management",
        "/add-model",
        "/benchmark-runner",
        "/model-comparison",
        "/fine-tuning",
        "/workbench",
        "/enhanced-workbench",
        "/curation",
        "/plugins",
        "/admin/",
        "/admin/jobs/batch/",
        "/admin/batchserver/auditentry/",
        "/api/browse/batches",
        "/metrics",
    ]


def measure(client: httpx.Client, path: str, warmup: int, count: int) -> dict[str, float]:
    times = []
    for i in range(warmup + count):
        started = time.perf_counter()
        answer = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != 200:
            raise SystemExit(f"{path}: HTTP {answer.status_code}")
        if i >= warmup:
            times.append(elapsed)
    times.sort()
    return {
        "p50": statistics.median(times),
        "p95": times[max(0, int(round(0.95 * len(times))) - 1)],
        "max": times[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10_000)
    parser.add_argument("--rows-per-batch", type=int, default=100)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--only", nargs="*", help="measure only these paths")
    args = parser.parse_args()

    env = _cluster.fake_env(
        LOG_STORE_FLUSH_SECONDS="1", CSRF_COOKIE_SECURE="0", SESSION_COOKIE_SECURE="0"
    )
    _cluster.ensure_database(env["DATABASE_URL"])
    log_dir = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    print("migrating…", flush=True)
    _cluster.prepare(env)
    _cluster.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        f"User.objects.create_superuser('bench', 'b@example.com', {PASSWORD!r})",
        env=env,
    )
    key_id = int(
        _cluster.manage(
            "shell",
            "-c",
            "from batchserver.models import ApiKey; print(ApiKey.objects.get(name='bench').pk)",
            env=env,
        )
        .strip()
        .splitlines()[-1]
    )
    url = env["DATABASE_URL"]
    print(f"seeding {args.batches} batches × {args.rows_per_batch} rows…", flush=True)
    started = time.monotonic()
    ids = seed(url, args.batches, args.rows_per_batch, key_id)
    print(f"  seeded in {time.monotonic() - started:.0f} s", flush=True)
    web, base = _cluster.start_web(env, log_dir, workers=args.web_workers)
    try:
        client = login(base)
        results = {}
        print(f"{'page':45} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for path in [p for p in pages(ids) if not args.only or p in args.only]:
            figures = measure(client, path, args.warmup, args.requests)
            results[path] = figures
            flag = "" if figures["p95"] <= LIMIT_MS else "  > 300 ms"
            row = f"{figures['p50']:8.1f} {figures['p95']:8.1f} {figures['max']:8.1f}"
            print(f"{path:45} {row}{flag}", flush=True)
    finally:
        web.stop()
    worst = max(results.items(), key=lambda item: item[1]["p95"])
    print(f"worst p95: {worst[0]} {worst[1]['p95']:.1f} ms (limit {LIMIT_MS:.0f} ms)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
