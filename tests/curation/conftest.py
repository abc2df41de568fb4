"""Fixtures of the curation tests: finished batches (fake engine, run inline) and datasets."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pytest

from curation import services
from curation.models import Dataset
from tests.conftest import request_line


def upload_lines(n: int, *, prefix: str = "question", model: str = "m1") -> bytes:
    """n upload lines: a prompt and an answer each."""
    return "".join(
        json.dumps(
            {
                "messages": [{"role": "user", "content": f"{prefix} {i}"}],
                "answer": f"answer {i}",
                "model": model,
                "custom_id": f"u-{i}",
            }
        )
        + "\n"
        for i in range(n)
    ).encode()


@pytest.fixture
def finished_batch(create_batch) -> Callable[..., dict]:
    """A batch of ``n`` chat lines run to completion by the fake engine (``echo: question i``)."""

    def _finished(n: int = 3, **kwargs) -> dict:
        batch = create_batch([request_line(i, **kwargs) for i in range(n)])
        assert batch["status"] == "completed", batch
        return batch

    return _finished


@pytest.fixture
def batch_dataset(finished_batch, django_capture_on_commit_callbacks) -> Callable[..., Dataset]:
    """A dataset made from a finished batch, imported inline."""

    def _make(n: int = 3, name: str = "from batch", owner=None) -> Dataset:
        batch = finished_batch(n)
        with django_capture_on_commit_callbacks(execute=True):
            dataset = services.create_dataset_from_batches(name, [batch["id"]], owner=owner)
        dataset.refresh_from_db()
        return dataset

    return _make


@pytest.fixture
def upload_dataset(db) -> Callable[..., Dataset]:
    def _make(n: int = 12, name: str = "uploaded", **kwargs) -> Dataset:
        return services.create_dataset_from_upload(
            name, io.BytesIO(upload_lines(n, **kwargs)), created_by="ops"
        )

    return _make
