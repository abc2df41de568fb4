# ruff: noqa: F811
"""A model test on the real vLLM engine with the embedded SmolLM2 (marked ``engine``).

Run under the shared lock: ``flock /tmp/engine.lock .venv/bin/python -m pytest -m engine
tests/models_registry``. The test batch goes through the ordinary pipeline inline; the worker's
engine loads the model for it (the engine is stopped first, so the load is this test's).
"""

from __future__ import annotations

import pytest

from jobs.worker.engine.manager import get_engine
from models_registry import model_tests
from models_registry.models import Model
from tests.engine.conftest import SMOLLM2, real_engine, smollm2, smollm2_folder  # noqa: F401

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module", autouse=True)
def _stop_engine_after_module():
    yield
    get_engine().shutdown()


def test_a_model_test_on_the_real_engine_records_load_memory_speed_and_answers(
    real_engine, smollm2, django_capture_on_commit_callbacks
):
    # given no model loaded yet
    real_engine.shutdown()

    # when the default model is tested with two short prompts
    with django_capture_on_commit_callbacks(execute=True):
        test = model_tests.start_test(
            smollm2,
            prompts=["What is 2 + 3? Answer with the number only.", "Say hello."],
            max_tokens=16,
        )
    test.refresh_from_db()

    # then it passed with real answers and the figures of this load
    assert test.status == "passed", test.as_dict()
    assert all(a["answer"] and a["error"] is None for a in test.answers)
    assert "5" in test.answers[0]["answer"]
    assert test.loaded_for_test and test.load_seconds > 1
    assert test.peak_memory_bytes > 500 * 2**20  # the engine's processes hold the model
    assert test.output_tokens > 2 and test.output_tokens_per_second > 1
    assert Model.objects.get(name=SMOLLM2).test_status == "passed"
    print("model test figures:", {k: v for k, v in test.as_dict().items() if k != "answers"})
