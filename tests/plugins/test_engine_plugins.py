# ruff: noqa: F811
"""The plugins that work with a model, on the real vLLM engine with SmolLM2 (a handful of lines).

A 135M model may or may not write a grade or a JSON verdict; what must hold is the path: the
prompts the plugins build run on the real engine, their answers are read back, and what the
parsers find (or do not find) is reported without an error.
"""

from __future__ import annotations

import pytest

from jobs.services import results
from plugins import services
from tests.engine.conftest import (  # noqa: F401
    SMOLLM2,
    _stop_engine_after_module,
    chat_line,
    real_engine,
    smollm2,
    smollm2_folder,
)

pytestmark = pytest.mark.engine


def test_quality_rater_judge_runs_on_the_real_model(
    real_engine, create_batch, django_capture_on_commit_callbacks
):
    services.enable("quality-rater")
    rated = create_batch(
        [chat_line(0, "What is the capital of France?"), chat_line(1, "Name a fruit.")]
    )
    assert rated["status"] == "completed" and rated["request_counts"]["completed"] == 2
    with django_capture_on_commit_callbacks(execute=True):
        job = services.start_batch_rating("quality-rater", rated["id"], model=SMOLLM2)
    judge = results.get_batch(job.judge_batch_id)
    assert judge.status == "completed" and judge.request_completed == 2
    scores = services.batch_scores(rated["id"])
    assert sorted(scores) == ["c0", "c1"]
    for (score,) in scores.values():
        assert score.name == "llm_judge" and score.scale == "1-10"
        assert score.value is None or 0.0 <= score.value <= 1.0
        assert score.explanation  # the judge's words, or why no grade was found
    # the rule-based scores of the same answers
    answer = results.answer_text(next(results.iter_results(rated["id"])).response_body)
    assert {s.name for s in services.rate(answer)} >= {"length", "refusal"}


def test_candidate_evaluator_runs_on_the_real_model(real_engine, create_batch):
    from batchserver_candidate_evaluator import candidate_lines, ranking

    services.enable("candidate-evaluator")
    settings = services.get_plugin("candidate-evaluator")["settings"] | {"max_tokens": 96}
    profiles = [
        {"name": "Ada", "role": "Engineer", "experience": "10 years", "skills": "Python, SQL"},
        {"name": "Bob", "role": "Cook", "experience": "1 year", "skills": "Soup"},
    ]
    lines = candidate_lines(profiles, "Senior Python engineer.", SMOLLM2, settings)
    batch = create_batch(lines, metadata={services.BATCH_METADATA_KEY: "candidate-evaluator"})
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == 2
    records = list(services.batch_records(batch["id"]))
    assert all(r["answer"] for r in records)
    for record in records:
        parsed = record["parsed"]
        assert parsed is None or set(parsed) == {"score", "strengths", "concerns", "recommendation"}
    html = services.render_component("candidate-evaluator", "ranking", {"batch_id": batch["id"]})
    assert "Ada" in html and "Bob" in html
    assert ranking  # the component's table builder is importable from the package
