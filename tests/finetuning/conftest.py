"""Fixtures for fine-tuning: a tiny real model to train, training files, jobs made via the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from finetuning.models import FineTuningJob
from models_registry import builtin
from models_registry.services import register_model
from tests.conftest import jsonl
from tests.finetuning.tiny import make_tiny_model

TINY = "tiny-base"


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> str:
    """A tiny Llama with SmolLM2's tokenizer (built once per session, in seconds)."""
    smollm2 = builtin.resolve_path(builtin.BUILTIN_PATH)
    return str(make_tiny_model(smollm2, tmp_path_factory.mktemp("tiny") / "tiny-llama"))


@pytest.fixture(autouse=True)
def _finetune_dirs(tmp_path, settings):
    settings.FINETUNE_DIR = tmp_path / "ft-jobs"
    settings.FINETUNE_MODELS_DIR = tmp_path / "ft-models"
    settings.FINETUNE_THREADS = 1


@pytest.fixture
def tiny_base(db, tiny_folder):
    return register_model(TINY, tiny_folder, max_model_len=512)


def example(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "You answer with a number."},
            {"role": "user", "content": f"What is {i} plus {i}?"},
            {"role": "assistant", "content": f"{2 * i}", **extra},
        ]
    }


def examples(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [example(i) for i in range(start, start + count)]


@pytest.fixture
def ft_file(upload) -> Callable[..., str]:
    """Upload training lines with purpose fine-tune; returns the file id."""

    def _upload(lines: list[Any] | bytes, **kwargs: Any) -> str:
        content = lines if isinstance(lines, bytes) else jsonl(lines)
        return upload(content, purpose="fine-tune", filename="train.jsonl", **kwargs)["id"]

    return _upload


@pytest.fixture
def create_job(client_api, django_capture_on_commit_callbacks) -> Callable[..., dict[str, Any]]:
    """POST a job; its validation task runs inline. ``run=True`` lets the worker train it too
    (the run_work task it enqueues runs inline, on the fake engine)."""

    def _create(run: bool = False, expect: int = 200, **body: Any) -> dict[str, Any]:
        body.setdefault("model", TINY)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = client_api.post("/v1/fine_tuning/jobs", body, format="json")
        assert response.status_code == expect, response.content
        if expect != 200:
            return response.json()
        with django_capture_on_commit_callbacks(execute=run):
            for callback in callbacks:
                callback()
        return client_api.get(f"/v1/fine_tuning/jobs/{response.json()['id']}").json()

    return _create


def job_row(job_id: str) -> FineTuningJob:
    return FineTuningJob.objects.get(pk=job_id)
