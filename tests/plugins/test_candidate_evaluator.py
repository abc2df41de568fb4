"""Candidate Evaluator end to end: prompts from profiles, verdicts parsed, ranked, exported."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from jobs.services import results
from jobs.worker.engine import fake
from plugins import services, testing
from tests.conftest import FAKE_MODEL
from tests.plugins.contrib import enable, post_page

META = {services.BATCH_METADATA_KEY: "candidate-evaluator"}
JOB = "Backend engineer: Python, PostgreSQL, on call one week in six."
CANDIDATES = (
    "name,role,experience,skills\n"
    "Ada Lovelace,Engineer,12 years,Python; PostgreSQL\n"
    'Bob Stone,Engineer,2 years,"Java, SQL"\n'
    "Cy Young,Analyst,5 years,Excel\n"
)
VERDICTS = {
    "Ada Lovelace": {
        "score": 9,
        "strengths": ["Python", "PostgreSQL"],
        "concerns": [],
        "recommendation": "strong_yes",
    },
    "Bob Stone": {
        "score": 5,
        "strengths": ["SQL"],
        "concerns": ["little Python"],
        "recommendation": "maybe",
    },
}


@pytest.fixture
def evaluator(db, model):
    enable("candidate-evaluator")


@pytest.fixture
def verdict_model(monkeypatch):
    """The fake engine answers an evaluation prompt with that candidate's verdict as JSON (and
    Cy Young's with prose that holds none)."""
    text_of = fake._text_of

    def answer(body):
        prompt = text_of(body)
        for name, verdict in VERDICTS.items():
            if f"Candidate: {name}" in prompt:
                return json.dumps(verdict)
        return prompt

    monkeypatch.setattr(fake, "_text_of", answer)


def line(i, body):
    return {"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}


def test_schema_hook_turns_profiles_into_evaluation_prompts(evaluator):
    lines = [
        line(
            1,
            {
                "model": FAKE_MODEL,
                "candidate": {"name": "Ada", "role": "Engineer", "skills": ["Python"]},
                "job_description": JOB,
            },
        ),
        line(2, {"model": FAKE_MODEL, "candidate": {"role": "nameless"}, "job_description": JOB}),
        line(3, {"model": FAKE_MODEL, "candidate": {"name": "Bob"}}),
        line(
            4, {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "not a candidate"}]}
        ),
    ]
    out = testing.apply_schema(lines, META)
    body = out[0]["body"]
    assert set(body) == {"model", "messages", "temperature", "max_tokens"}
    assert (
        body["messages"][0]["role"] == "system" and "JSON object" in body["messages"][0]["content"]
    )
    assert "Job description:\n" + JOB in body["messages"][1]["content"]
    assert (
        "Candidate: Ada\nRole: Engineer\nExperience: \nSkills: Python"
        in body["messages"][1]["content"]
    )
    assert out[1]["error"]["code"] == "invalid_candidate"
    assert out[2]["error"] == {
        "code": "missing_job_description",
        "message": "plugin candidate-evaluator: body.job_description is missing",
    }
    assert out[3] == lines[3]  # not a candidate line: declined, untouched
    # other batches are never touched
    assert testing.apply_schema(lines, {"team": "x"}) == lines


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            'Here: {"score": 8, "strengths": ["a", "b"], "concerns": "c; d", '
            '"recommendation": "Yes"}',
            {
                "score": 8.0,
                "strengths": ["a", "b"],
                "concerns": ["c", "d"],
                "recommendation": "yes",
            },
        ),
        (
            "Score: 6/10\nStrengths: SQL, teamwork\nConcerns: none listed\nRecommendation: maybe",
            {
                "score": 6.0,
                "strengths": ["SQL", "teamwork"],
                "concerns": ["none listed"],
                "recommendation": "maybe",
            },
        ),
        ("I cannot evaluate this person.", None),
    ],
)
def test_parser_extracts_the_verdict(evaluator, text, expected):
    parsed = services.parse_answer(text, metadata=META)
    assert (parsed.fields if parsed else None) == expected
    if parsed:
        assert parsed.plugin == "candidate-evaluator"


def test_evaluate_page_to_ranking_and_csv(
    evaluator, verdict_model, staff_client, django_capture_on_commit_callbacks
):
    url = "/plugins/candidate-evaluator/evaluate"
    form = {"model": FAKE_MODEL, "job_description": JOB, "candidates": CANDIDATES}

    preview = post_page(staff_client, url, {**form, "action": "preview"}).content.decode()
    assert "3 candidates; the first prompts:" in preview

    with django_capture_on_commit_callbacks(execute=True):
        page = post_page(staff_client, url, {**form, "action": "submit"}).content.decode()
    batch_id = re.search(r'href="/batches/(batch_[A-Za-z0-9]+)"', page).group(1)
    batch = results.get_batch(batch_id)
    assert batch.status == "completed" and batch.request_total == 3
    assert batch.metadata[services.BATCH_METADATA_KEY] == "candidate-evaluator"

    # the ranking: by score, the candidate without a verdict last
    ranked = staff_client.get(f"{url}?batch_id={batch_id}").content.decode()
    table = re.search(
        r'<table class="plugin-table" id="candidate-ranking">(.*?)</table>', ranked, re.S
    )
    names = re.findall(r"<tr><td>\d+</td><td>([^<]+)</td>", table.group(1))
    assert names == ["Ada Lovelace", "Bob Stone", "Cy Young"]
    assert "9/10" in table.group(1) and "no verdict" in table.group(1)

    # the parser through the batch's own plugins, as the jobs wiring will call it
    records = list(services.batch_records(batch_id))
    assert records[0]["parsed"] == {**VERDICTS["Ada Lovelace"], "score": 9.0}

    # the CSV export, downloaded as a staff member would
    response = staff_client.get(f"/plugins/export/candidates-csv?batch_id={batch_id}")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    assert f'filename="{batch_id}.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["name"], r["score"], r["recommendation"]) for r in rows] == [
        ("Ada Lovelace", "9.0", "strong_yes"),
        ("Bob Stone", "5.0", "maybe"),
        ("Cy Young", "", ""),
    ]
    assert rows[1]["concerns"] == "little Python" and rows[0]["role"] == "Engineer"


def test_export_writes_in_flat_memory(evaluator):
    """50,000 records stream through the CSV writer without being held (a generator in)."""
    import tracemalloc

    def records(n):
        for i in range(n):
            yield {
                "custom_id": f"c{i}",
                "messages": [],
                "answer": '{"score": 5, "recommendation": "no"}',
            }

    out = io.BytesIO()
    tracemalloc.start()
    services.export("candidates-csv", records(50_000), out)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert out.getvalue().count(b"\n") == 50_001
    assert peak - len(out.getvalue()) < 5_000_000, peak  # the output buffer itself aside


def test_ranking_component_escapes_candidate_data(evaluator):
    html = services.render_component(
        "candidate-evaluator",
        "ranking",
        {
            "verdicts": [
                {"name": "<script>alert(1)</script>", "score": 3, "strengths": ["<b>x</b>"]}
            ]
        },
    )
    assert "<script>" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
