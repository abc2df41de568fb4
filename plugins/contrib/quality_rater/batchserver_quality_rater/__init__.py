"""Quality Rater: rule-based scores and an LLM-as-judge score (rating hooks of batchserver)."""

from __future__ import annotations

from statistics import mean
from typing import Any

from batchserver.errors import DomainError
from batchserver_quality_rater import judge
from batchserver_quality_rater.rules import DEFAULT_MAX_CHARS, rule_scores
from plugins.sdk import PageRequest, Score, hookimpl, host, ui

PLUGIN_ID = judge.PLUGIN_ID
SHOWN_ROWS = 100
manifest = {
    "id": PLUGIN_ID,
    "name": "Quality Rater",
    "version": "1.0.0",
    "description": "Scores answers: length, refusal detection, valid JSON, ROUGE-L against a "
    "reference, and an optional LLM-as-judge score run as a batch on a chosen model.",
    "author": "batchserver",
    "min_server_version": "0.1.0",
    "hooks": ["rating", "ui"],
    "settings": {
        "type": "object",
        "properties": {
            "min_chars": {"type": "integer", "minimum": 0, "default": 1},
            "max_chars": {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_CHARS},
            "judge_model": {"type": "string", "default": ""},
            "judge_rubric": {"type": "string", "default": judge.DEFAULT_RUBRIC},
            "judge_max_tokens": {"type": "integer", "minimum": 4, "default": 64},
        },
    },
    # Starting a judge batch writes one line per answer: more than the default 2 s.
    "time_budget_seconds": {"rating": 2, "ui": 60},
    "pages": [{"name": "judge", "title": "Rate a batch"}],
    "components": [
        {
            "name": "batch-scores",
            "title": "Scores of a batch",
            "description": "Average of each score over a batch's answers (data: batch_id), "
            "or over the answers given (data: answers).",
            "sample_data": {
                "answers": [
                    {"answer": "Paris is the capital of France.", "reference": "Paris"},
                    {"answer": "I'm sorry, but I can't help with that."},
                ]
            },
        }
    ],
}


@hookimpl
def batchserver_rate(answer, prompt, reference, body, settings) -> list[Score]:
    return rule_scores(answer or "", prompt or "", reference, body or {}, settings)


@hookimpl
def batchserver_start_batch_rating(batch_id, options, settings):
    return judge.start(batch_id, options or {}, settings)


@hookimpl
def batchserver_batch_scores(batch_id, settings):
    return judge.scores(batch_id)


def _batch_rows(batch_id: str, settings: dict[str, Any]) -> list[tuple[str, str, list[Score]]]:
    judged = judge.scores(batch_id) or {}
    rows = []
    for row in host.iter_results(batch_id, statuses=("completed",)):
        answer = host.answer_text(row.response_body) or ""
        messages = host.prompt_messages(row.body)
        prompt = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
        scores = rule_scores(answer, prompt, None, {}, settings) + judged.get(row.custom_id, [])
        rows.append((row.custom_id, answer, scores))
    return rows


def _summary(all_scores: list[list[Score]]) -> ui.Table:
    names: dict[str, list[float]] = {}
    for scores in all_scores:
        for score in scores:
            if score.value is not None:
                names.setdefault(score.name, []).append(score.value)
    rows = [[name, len(values), ui.Bar(mean(values))] for name, values in names.items()]
    return ui.Table(["Score", "Answers", "Mean (0–1)"], rows, id="quality-summary")


@hookimpl
def batchserver_render_component(component: str, data: dict[str, Any], settings):
    if data.get("batch_id"):
        rows = _batch_rows(str(data["batch_id"]), settings)
        return [_summary([scores for _, _, scores in rows])]
    answers = [a for a in data.get("answers", []) if isinstance(a, dict)]
    return [
        _summary(
            [
                rule_scores(str(a.get("answer", "")), "", a.get("reference"), {}, settings)
                for a in answers
            ]
        )
    ]


def _judge_form(request: PageRequest, settings: dict[str, Any]) -> ui.Form:
    models = [(m, m) for m in host.active_models()]
    return ui.Form(
        id="quality-judge-form",
        fields=[
            ui.Field("batch_id", "Batch", "text", request.get("batch_id"), required=True),
            ui.Field(
                "model",
                "Judge model",
                "select",
                request.get("model", settings["judge_model"]),
                models,
            ),
            ui.Field(
                "rubric", "Rubric", "textarea", request.get("rubric", settings["judge_rubric"])
            ),
        ],
        buttons=(("show", "Show scores"), ("judge", "Start LLM judge")),
    )


def _scores_table(batch_id: str, settings: dict[str, Any]) -> list[Any]:
    rows = _batch_rows(batch_id, settings)
    names = sorted({s.name for _, _, scores in rows for s in scores})
    table_rows = []
    for custom_id, answer, scores in rows[:SHOWN_ROWS]:
        by_name = {s.name: s for s in scores}
        cells = [ui.Bar(by_name[n].value) if n in by_name else None for n in names]
        table_rows.append([custom_id, answer[:160], *cells])
    record = host.load_record(PLUGIN_ID, judge.judge_key(batch_id))
    status = (
        [
            ui.Link(
                f"Judge batch {record['judge_batch_id']} ({record['model']})",
                host.batch_page_url(record["judge_batch_id"]),
            )
        ]
        if record
        else [ui.Text("No LLM judge has rated this batch yet.")]
    )
    return [
        ui.Heading(f"Scores of {batch_id}"),
        *status,
        _summary([scores for _, _, scores in rows]),
        ui.Table(["custom_id", "answer", *names], table_rows, id="quality-rows"),
    ]


@hookimpl
def batchserver_render_page(page: str, request: PageRequest, settings):
    widgets: list[Any] = []
    batch_id = request.get("batch_id").strip()
    if request.method == "POST" and request.form.get("action") == "judge":
        options = {"model": request.get("model"), "rubric": request.get("rubric")}
        try:
            job = judge.start(batch_id, options, settings)
            widgets.append(
                ui.Notice(f"Judge batch {job.judge_batch_id} started: {job.detail}.", "success")
            )
        except DomainError as exc:
            widgets.append(ui.Notice(exc.message, "error"))
    if batch_id:
        try:
            host.get_batch(batch_id)
            widgets += _scores_table(batch_id, settings)
        except DomainError as exc:
            widgets.append(ui.Notice(exc.message, "error"))
    return [*widgets, _judge_form(request, settings)]
