"""Reliability tests: kill workers, restart the database, fill the disk; lose or repeat nothing.

The cluster tests here start real gunicorn + qcluster processes (``tests/cluster.py``) on the
test database and write for real (``transactional_db``). pytest-django empties the tables after
each such test, which also removes the django-q2 schedule of ``jobs.tasks.tick``: the tests
nudge the worker themselves (``nudge``) instead of waiting a minute for the tick.

Each test records its figures (kills survived, lines lost or repeated, seconds to resume) in
``<data dir>/reliability/<test>.json`` and prints them; RELIABILITY.md quotes them.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.conftest import FAKE_MODEL, jsonl

ENDPOINT = "/v1/chat/completions"


@pytest.fixture
def committed(transactional_db) -> None:
    """What the test writes is committed, so that the started processes see it."""


def input_lines(count: int, model: str = FAKE_MODEL) -> bytes:
    """``count`` chat requests with custom_ids ``req-0`` … ``req-<count-1>``."""
    return jsonl(
        [
            {
                "custom_id": f"req-{i}",
                "method": "POST",
                "url": ENDPOINT,
                "body": {"model": model, "messages": [{"role": "user", "content": f"q {i}"}]},
            }
            for i in range(count)
        ]
    )


def nudge() -> None:
    """Enqueue ``jobs.tasks.tick`` on the ORM broker unless a task is already waiting.

    The tick resumes whatever no task carries (a killed worker's chunk, once its lease ran out),
    as the minutely schedule does in production.
    """
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    if get_broker().queue_size() == 0:
        async_task("jobs.tasks.tick", sync=False)


def wait_for(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    every: float = 0.1,
    while_waiting: Callable[[], None] | None = None,
    diagnostics: Callable[[], str] = lambda: "",
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_nudge = 0.0
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout}s\n{diagnostics()}")
        if while_waiting and time.monotonic() - last_nudge > 1.0:
            while_waiting()
            last_nudge = time.monotonic()
        time.sleep(every)


def check_exactly_once(texts: list[str], expected_ids: set[str]) -> dict[str, int]:
    """Every line valid JSON, every expected custom_id exactly once, nothing else.

    Returns the figures: lines, lost, duplicated, invalid.
    """
    ids: Counter[str] = Counter()
    invalid = lines = 0
    for text in texts:
        for line in text.splitlines():
            lines += 1
            try:
                ids[json.loads(line)["custom_id"]] += 1
            except (ValueError, KeyError, TypeError):
                invalid += 1
    figures = {
        "lines": lines,
        "lost": len(expected_ids - set(ids)),
        "duplicated": sum(n - 1 for n in ids.values() if n > 1),
        "unexpected": len(set(ids) - expected_ids),
        "invalid": invalid,
    }
    assert figures == {
        "lines": len(expected_ids),
        "lost": 0,
        "duplicated": 0,
        "unexpected": 0,
        "invalid": 0,
    }, figures
    return figures


def record_figures(name: str, figures: dict[str, Any]) -> Path:
    """Print the figures and keep them in ``<data dir>/reliability/<name>.json``."""
    folder = Path(settings.DATA_DIR) / "reliability"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, sort_keys=True))
    print(f"\n{name}: {json.dumps(figures, sort_keys=True)}")
    return path


def pytest_collection_modifyitems(items):
    """Every test here is a slow chaos test: ``-m "not reliability"`` skips them all."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)
