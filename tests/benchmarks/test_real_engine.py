# ruff: noqa: F811
"""A benchmark run of two variants of the default model on the real vLLM engine (SmolLM2).

The same weights registered twice with different engine settings (context length 2048 and
1024): the run loads one, runs its batch, swaps to the other, and stores real figures — tokens
per second, latency percentiles from the engine — and real answers scored against references.
"""

from __future__ import annotations

import pytest

from benchmarks import selectors, services
from jobs.worker.engine.manager import get_engine
from models_registry import builtin
from models_registry.services import register_model
from tests.engine.conftest import smollm2_folder  # noqa: F401

pytestmark = pytest.mark.engine

VARIANTS = {
    "smollm2-ctx2048": builtin.ENGINE_SETTINGS,
    "smollm2-ctx1024": {**builtin.ENGINE_SETTINGS, "max_model_len": 1024},
}


@pytest.fixture(scope="module", autouse=True)
def _stop_engine_after_module():
    yield
    get_engine().shutdown()


def test_two_variants_of_the_default_model_are_benchmarked_side_by_side(
    db, settings, smollm2_folder, django_capture_on_commit_callbacks
):
    # given the default model's weights registered as two variants, and the capitals dataset
    settings.BATCHSERVER_ENGINE = "vllm"
    settings.BATCH_CHUNK_SIZE = 20
    for name, engine_settings in VARIANTS.items():
        register_model(name, builtin.BUILTIN_PATH, **engine_settings)
    dataset = services.get_dataset("builtin/capitals")  # 20 prompts

    # when a run of both variants goes through the batch pipeline on the real engine
    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_run(
            dataset,
            list(VARIANTS),
            temperature=0,
            max_tokens=12,
            scorers=["exact_match", "contains", "regex", "rouge_l"],
        )
    run.refresh_from_db()

    # then both have real figures: every prompt answered, tokens per second, latency
    assert run.status == "completed", selectors.run_data(run)
    results = list(run.results.all())
    assert [r.model for r in results] == list(VARIANTS)
    for result in results:
        assert (result.status, result.completed, result.errors) == ("completed", 20, 0)
        assert result.output_tokens > 20 and result.output_tokens_per_second > 1
        assert result.total_tokens_per_second > result.output_tokens_per_second
        assert 0 < result.latency_p50_ms <= result.latency_p95_ms
        # a 135M model knows some capitals (Paris, Rome, …), not all
        assert 0.2 <= result.quality["contains"] <= 1.0, result.quality
        assert result.quality["rouge_l"] > 0
    # and the matrix holds each prompt once with both real answers
    found = selectors.comparison([run.pk])
    assert len(found.rows) == 20 and len(found.columns) == 2
    france = found.rows[0]
    assert france["item"].reference == "Paris"
    assert all(cell.answer and not cell.error for cell in france["cells"])
    # same weights, temperature 0: the two variants mostly give the same answers
    same = sum(row["cells"][0].answer == row["cells"][1].answer for row in found.rows)
    assert same >= 15, same
