"""Curation at 50,000 records: import, workbench and filtered lists, bulk action, export.

A completed batch of ``--records`` lines is written straight into the benchmark database (the
rows the worker would have written: chat bodies and answers of varied length; running 50,000
lines through the fake engine would only measure the engine). Then, in this process, the
batch becomes a dataset owned by the API key (the import task runs inline, timed). A gunicorn
web server (``--web-workers``) on the same database then answers, timed from a client:

- ``/workbench`` (staff session): the first record, a record in the middle, a text search, a
  filter on status + model; the same filter's page right after a review of the record shown
  (a write renews the cached selections, so that view reads the selection again);
  ``/v1/curation/records`` (API key): a filtered page of 50;
- a bulk action on all records (``label`` then ``accept``, from the workbench's bulk form);
- the fine-tuning export of all records (``POST …/exports``), while the peak RSS of every web
  process is sampled.

Usage:
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/curation_bench \\
        .venv/bin/python bench/curation.py [--records 50000] [--requests 60]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _cluster  # noqa: E402
from bench._cluster import MB, PeakRss  # noqa: E402

PASSWORD = "bench-password-123"
WORDS = "the model answers with a long and careful explanation of every step it takes".split()


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "batchserver.settings"
    import django

    django.setup()


def fabricate_batch(n: int, raw_key: str) -> str:
    """A completed batch of ``n`` answered chat lines, written as the worker would have."""
    import io
    from datetime import timedelta

    from django.utils import timezone

    from batchserver.models import ApiKey
    from jobs.models import Batch, BatchRequest
    from jobs.services.files import create_file_from_stream

    key = ApiKey.find(raw_key)
    assert key is not None
    model = _cluster.FAKE_MODEL
    stored = create_file_from_stream(
        key, io.BytesIO(b"{}\n"), purpose="batch", filename="bench.jsonl"
    )
    now = timezone.now()
    batch = Batch.objects.create(
        owner=key,
        input_file=stored,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        status="completed",
        expires_at=now + timedelta(hours=24),
        completed_at=now,
        request_total=n,
        request_completed=n,
        model=model,
    )
    rows = []
    for i in range(n):
        words = WORDS[: 3 + i % len(WORDS)] * (1 + i % 7)
        answer = f"answer {i}: " + " ".join(words)
        body = {"model": model, "messages": [{"role": "user", "content": f"question {i}"}]}
        response = {
            "id": f"chatcmpl-{i}",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": len(words) + 3},
        }
        rows.append(
            BatchRequest(
                batch=batch,
                line=i + 1,
                custom_id=f"r{i}",
                chunk=i // 256,
                body=json.dumps(body),
                status="completed",
                response_status=200,
                response_body=json.dumps(response),
                input_tokens=5,
                output_tokens=len(words) + 3,
                finished_at=now,
            )
        )
        if len(rows) == 5000:
            BatchRequest.objects.bulk_create(rows)
            rows = []
    BatchRequest.objects.bulk_create(rows)
    return batch.id


def import_dataset(batch_id: str, raw_key: str) -> tuple[int, float]:
    from django.db import transaction

    from batchserver.models import ApiKey
    from curation import services

    key = ApiKey.find(raw_key)
    started = time.perf_counter()
    with transaction.atomic():
        dataset = services.create_dataset_from_batches("bench", [batch_id], owner=key)
    # Q_SYNC: the import task ran inline once the transaction committed
    seconds = time.perf_counter() - started
    dataset.refresh_from_db()
    assert dataset.task == "" and dataset.task_done > 0, dataset.task_error
    return dataset.pk, seconds


def staff_session(url: str) -> httpx.Client:
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("bench", "bench@example.com", PASSWORD)
    client = httpx.Client(base_url=url, timeout=120)
    client.get("/admin/login/")
    client.post(
        "/admin/login/",
        data={
            "username": "bench",
            "password": PASSWORD,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
            "next": "/admin/",
        },
    )
    assert "sessionid" in client.cookies, "login failed"
    return client


def timed(client: httpx.Client, path: str, n: int) -> list[float]:
    client.get(path).raise_for_status()  # warm
    out = []
    for _ in range(n):
        started = time.perf_counter()
        client.get(path).raise_for_status()
        out.append((time.perf_counter() - started) * 1000)
    return out


def timed_after_review(client: httpx.Client, path: str, n: int) -> list[float]:
    """The page right after each of ``n`` reviews (a rating, 3 and 4 in turn) of its record."""
    page = client.get(path).text
    out = []
    for i in range(n):
        record = re.search(r'data-record="(\d+)" data-version="(\d+)"', page)
        assert record, page[:500]
        response = client.post(
            path,
            data={
                "record": record.group(1),
                "version": record.group(2),
                "rating": str(3 + i % 2),
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
            headers={"Referer": str(client.base_url)},
        )
        assert response.status_code == 302, response.text[:500]
        started = time.perf_counter()
        page = client.get(path).text
        out.append((time.perf_counter() - started) * 1000)
    return out


def bulk(client: httpx.Client, dataset_id: int, action: str, value: str = "") -> tuple[float, str]:
    started = time.perf_counter()
    response = client.post(
        f"/workbench?dataset={dataset_id}",
        data={
            "action": "bulk",
            "bulk_action": action,
            "value": value,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers={"Referer": str(client.base_url)},
    )
    seconds = time.perf_counter() - started
    assert response.status_code == 302, response.text[:500]
    page = client.get(response.headers["location"]).text
    message = re.search(r'<li class="success">([^<]*)</li>', page)
    return seconds, message.group(1) if message else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=60, help="timed GETs per page")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--profile", type=Path, help="py-spy the web processes into this folder")
    args = parser.parse_args()
    _cluster.exit_on_sigterm()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-curation-"))
    env = _cluster.fake_env(
        BATCHSERVER_DATA_DIR=str(data_dir),
        API_THROTTLE_RATE="off",
        SESSION_COOKIE_SECURE="0",  # plain HTTP on loopback
        CSRF_COOKIE_SECURE="0",
    )
    _cluster.ensure_database(env["DATABASE_URL"])
    raw_key = _cluster.prepare(env)
    setup_django({**env, "Q_SYNC": "1"})

    started = time.perf_counter()
    batch_id = fabricate_batch(args.records, raw_key)
    took = time.perf_counter() - started
    print(f"fabricated a completed batch of {args.records} lines in {took:.1f} s")
    dataset_id, seconds = import_dataset(batch_id, raw_key)
    print(f"import of the batch into a dataset: {seconds:.2f} s")

    web = rss = profiler = None
    try:
        web, url = _cluster.start_web(env, data_dir, workers=args.web_workers)
        rss = PeakRss(web.popen.pid, interval=0.05)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            profiler = _cluster.Profiler(web.popen.pid, args.profile / "web.txt", rate=100)
        staff = staff_session(url)
        api = httpx.Client(
            base_url=f"{url}/v1/curation",
            headers={"Authorization": f"Bearer {raw_key}"},
            timeout=120,
        )
        from curation.models import Record

        middle = Record.objects.order_by("id").values_list("id", flat=True)[args.records // 2]
        pages = {
            "workbench, first record": f"/workbench?dataset={dataset_id}",
            "workbench, middle record": f"/workbench?dataset={dataset_id}&record={middle}",
            "workbench, text search": f"/workbench?dataset={dataset_id}&q=question+4242",
            "workbench, status+model filter": f"/workbench?dataset={dataset_id}&status=pending"
            f"&model={_cluster.FAKE_MODEL}",
        }
        for name, path in pages.items():
            figures = timed(staff, path, args.requests)
            print(f"{name}: p50 {statistics.median(figures):.0f} ms, p95 {p95(figures):.0f} ms")
        figures = timed_after_review(staff, pages["workbench, status+model filter"], args.requests)
        print(
            "workbench, status+model filter, right after a review: "
            f"p50 {statistics.median(figures):.0f} ms, p95 {p95(figures):.0f} ms"
        )
        for name, path in {
            "API records, filtered page of 50": f"/records?dataset={dataset_id}&status=pending"
            "&limit=50",
            "API records, text search": f"/records?dataset={dataset_id}&q=question+4242&limit=50",
        }.items():
            figures = timed(api, path, args.requests)
            print(f"{name}: p50 {statistics.median(figures):.0f} ms, p95 {p95(figures):.0f} ms")

        for action, value in (("label", "bench"), ("accept", "")):
            seconds, message = bulk(staff, dataset_id, action, value)
            print(f"bulk {action} on all {args.records}: {seconds:.2f} s ({message})")

        rss.take()
        started = time.perf_counter()
        export = api.post(f"/datasets/{dataset_id}/exports", json={"format": "finetune"})
        seconds = time.perf_counter() - started
        export.raise_for_status()
        total, largest = rss.take()
        body = export.json()
        print(
            f"fine-tuning export of {body['lines']} lines: {seconds:.2f} s; web peak RSS: "
            f"largest process {largest / MB:.0f} MB, all web processes {total / MB:.0f} MB"
        )
        started = time.perf_counter()
        downloaded = httpx.get(
            f"{url}/v1/files/{body['file_id']}/content",
            headers={"Authorization": f"Bearer {raw_key}"},
            timeout=120,
        )
        print(
            f"download of the export ({len(downloaded.content) / MB:.1f} MB): "
            f"{time.perf_counter() - started:.2f} s"
        )
    finally:
        if profiler:
            profiler.stop()
        if rss:
            rss.close()
        if web:
            web.stop()


if __name__ == "__main__":
    main()
