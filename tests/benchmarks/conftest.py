"""Fixtures of the benchmark tests: datasets, two fake models, a run driven inline."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pytest

from benchmarks import services
from benchmarks.models import Run
from models_registry.services import register_model


def dataset_jsonl(n: int = 6, reference=lambda i: f"question {i}") -> bytes:
    """Prompts the fake engine answers with ``echo: question i``."""
    return "".join(
        json.dumps(
            {
                "id": f"q{i}",
                "messages": [{"role": "user", "content": f"question {i}"}],
                "reference": reference(i),
                "tags": ["t"],
            }
        )
        + "\n"
        for i in range(n)
    ).encode()


@pytest.fixture
def small_dataset(db):
    return services.create_dataset_from_upload("small", io.BytesIO(dataset_jsonl()))


@pytest.fixture
def two_models(db):
    return register_model("fake-a"), register_model("fake-b")


@pytest.fixture
def run_inline(django_capture_on_commit_callbacks) -> Callable[..., Run]:
    """Start a run and let every task it causes (batches, worker, results) run inline."""

    def _run(dataset, models, **options) -> Run:
        with django_capture_on_commit_callbacks(execute=True):
            run = services.start_run(dataset, models, **options)
        run.refresh_from_db()
        return run

    return _run
