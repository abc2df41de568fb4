"""Quality Rater: rule-based scores, and the LLM judge run as a batch and read back."""

from __future__ import annotations

import pytest

from batchserver.errors import Invalid
from jobs.services import results
from plugins import services
from tests.conftest import FAKE_MODEL, request_line
from tests.plugins.contrib import enable


@pytest.fixture
def rater(db):
    enable("quality-rater")


def by_name(scores):
    return {s.name: s for s in scores}


def test_rule_based_scores(rater):
    scores = by_name(
        services.rate("Paris is the capital of France.", reference="The capital is Paris")
    )
    assert set(scores) == {"length", "refusal", "rouge_l"}
    assert all(s.plugin == "quality-rater" for s in scores.values())
    assert scores["length"].value == 1.0 and scores["length"].raw == 31
    assert scores["refusal"].value == 1.0
    assert 0.3 < scores["rouge_l"].value < 0.8

    refused = by_name(services.rate("I'm sorry, but I can't help with that."))
    assert refused["refusal"].value == 0.0 and "sorry" in refused["refusal"].explanation.lower()

    asked = by_name(services.rate('```json\n{"a": 1}\n```', prompt="Answer in JSON"))
    assert asked["valid_json"].value == 1.0
    broken = by_name(services.rate("{a: 1", body={"response_format": {"type": "json_object"}}))
    assert broken["valid_json"].value == 0.0

    exact = by_name(services.rate("the cat sat", reference="the cat sat"))
    assert exact["rouge_l"].value == 1.0


def test_length_limits_come_from_the_settings(rater):
    services.update_settings("quality-rater", {"min_chars": 10, "max_chars": 20})
    assert by_name(services.rate("short"))["length"].value == 0.5
    assert by_name(services.rate("x" * 40))["length"].value == 0.5


def test_llm_judge_runs_as_a_batch_and_its_scores_are_read_back(
    rater, create_batch, django_capture_on_commit_callbacks
):
    # given a finished batch of three answers
    rated = create_batch([request_line(i) for i in range(3)])
    assert rated["status"] == "completed"

    # when the judge is started (the fake engine echoes the rubric, which holds a grade)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.start_batch_rating(
            "quality-rater",
            rated["id"],
            model=FAKE_MODEL,
            rubric="Score: 7 unless the answer is empty.",
        )
    assert job.plugin == "quality-rater" and job.rated_batch_id == rated["id"]

    # then the judge batch ran with the console key, one line per answer
    judge = results.get_batch(job.judge_batch_id)
    assert judge.status == "completed" and judge.request_total == 3
    assert judge.owner.internal and judge.metadata["judge_of"] == rated["id"]
    first = next(results.iter_results(judge.id))
    messages = results.prompt_messages(first.body)
    assert messages[0] == {"role": "system", "content": "Score: 7 unless the answer is empty."}
    assert "Question:\nquestion 0" in messages[1]["content"]

    # and the scores come back per custom_id, normalised to 0..1
    scores = services.batch_scores(rated["id"])
    assert sorted(scores) == ["req-0", "req-1", "req-2"]
    score = scores["req-0"][0]
    assert (score.name, score.raw, score.scale, score.plugin) == (
        "llm_judge",
        7.0,
        "1-10",
        "quality-rater",
    )
    assert score.value == pytest.approx(6 / 9, abs=1e-3)


def test_judge_answers_without_a_grade_are_scored_none(
    rater, create_batch, django_capture_on_commit_callbacks
):
    rated = create_batch([request_line(0)])
    with django_capture_on_commit_callbacks(execute=True):
        services.start_batch_rating(
            "quality-rater", rated["id"], model=FAKE_MODEL, rubric="Grade it."
        )
    (score,) = services.batch_scores(rated["id"])["req-0"]
    assert score.value is None and "no score" in score.explanation


def test_judge_needs_a_model_and_answers(rater, create_batch):
    rated = create_batch([request_line(0, content="x [[fail]]")])
    with pytest.raises(Invalid, match="No judge model"):
        services.start_batch_rating("quality-rater", rated["id"])
    with pytest.raises(Invalid, match="no completed answers"):
        services.start_batch_rating("quality-rater", rated["id"], model=FAKE_MODEL)
    # refusing a request is not a plugin failure
    assert services.get_plugin("quality-rater")["error_count"] == 0


def test_the_judge_page_and_component(rater, staff_client, create_batch):
    rated = create_batch([request_line(i) for i in range(2)])
    page = staff_client.get(f"/plugins/quality-rater/judge?batch_id={rated['id']}").content.decode()
    assert f"Scores of {rated['id']}" in page and 'id="quality-rows"' in page
    assert "No LLM judge has rated this batch yet." in page
    html = services.render_component("quality-rater", "batch-scores", {"batch_id": rated["id"]})
    assert "refusal" in html and "length" in html
