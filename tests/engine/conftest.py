"""Fixtures for tests on the real vLLM engine with the embedded SmolLM2 model."""

from __future__ import annotations

import pytest

from jobs.worker.engine.manager import get_engine
from models_registry import builtin
from models_registry.services import register_model

SMOLLM2 = builtin.DEFAULT_NAME


@pytest.fixture(scope="session")
def smollm2_folder() -> str:
    """The converted model folder (converted once per machine, about 25 s the first time)."""
    return builtin.resolve_path(builtin.BUILTIN_PATH)


@pytest.fixture
def smollm2(db, smollm2_folder):
    return register_model(SMOLLM2, builtin.BUILTIN_PATH, **builtin.ENGINE_SETTINGS)


@pytest.fixture
def real_engine(settings, smollm2):
    """Batches in this test run in-process on the vLLM engine host (kept warm across tests)."""
    settings.BATCHSERVER_ENGINE = "vllm"
    settings.BATCH_CHUNK_SIZE = 8
    yield get_engine()


@pytest.fixture(scope="module", autouse=True)
def _stop_engine_after_module():
    yield
    get_engine().shutdown()


def chat_line(i: int, content: str, model: str = SMOLLM2, **params) -> dict:
    return {
        "custom_id": f"c{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": model,
            "messages": [{"role": "user", "content": content}],
            "temperature": 0,
            "max_tokens": 16,
            **params,
        },
    }
