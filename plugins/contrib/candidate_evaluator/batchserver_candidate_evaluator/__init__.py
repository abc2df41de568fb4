"""Candidate Evaluator: profiles + a job description -> evaluations, verdicts, ranking, CSV.

Schema, parser, export and UI hooks of batchserver (see README.md).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from typing import IO, Any

from batchserver.errors import DomainError
from batchserver_candidate_evaluator.evaluation import (
    ProfileError,
    candidate_from_messages,
    evaluation_messages,
    parse_verdict,
    read_profiles,
)
from plugins.sdk import ExportFormat, LineRejected, PageRequest, hookimpl, host, ui

PLUGIN_ID = "candidate-evaluator"
EXPORT_ID = "candidates-csv"
CSV_COLUMNS = ("custom_id", "name", "role", "score", "recommendation", "strengths", "concerns")
manifest = {
    "id": PLUGIN_ID,
    "name": "Candidate Evaluator",
    "version": "1.0.0",
    "description": "Turns candidate profiles and a job description into evaluation prompts, "
    "extracts each verdict (score, strengths, concerns, recommendation), ranks the candidates "
    "of a batch and exports them to CSV.",
    "author": "batchserver",
    "min_server_version": "0.1.0",
    "hooks": ["schema", "parser", "export", "ui"],
    "settings": {
        "type": "object",
        "properties": {
            "max_tokens": {"type": "integer", "minimum": 16, "default": 400},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2, "default": 0},
            "preview_lines": {"type": "integer", "minimum": 1, "maximum": 20, "default": 3},
        },
    },
    "time_budget_seconds": {"schema": 2, "parser": 2, "ui": 60, "export": 2},
    "pages": [{"name": "evaluate", "title": "Evaluate candidates"}],
    "components": [
        {
            "name": "ranking",
            "title": "Candidate ranking",
            "description": "The candidates of a batch ranked by score (data: batch_id).",
            "sample_data": {
                "verdicts": [
                    {
                        "name": "Ada",
                        "role": "Engineer",
                        "score": 9,
                        "recommendation": "strong_yes",
                        "strengths": ["compilers"],
                        "concerns": [],
                    },
                    {
                        "name": "Bob",
                        "role": "Engineer",
                        "score": 5,
                        "recommendation": "maybe",
                        "strengths": ["SQL"],
                        "concerns": ["no Python"],
                    },
                ]
            },
        }
    ],
}


@hookimpl
def batchserver_transform_line(body: dict[str, Any], settings: dict[str, Any]):
    """A line with ``candidate`` and ``job_description`` becomes an evaluation prompt."""
    candidate = body.get("candidate")
    if candidate is None:
        return None  # not a candidate line (e.g. already an evaluation prompt)
    if not isinstance(candidate, dict) or not str(candidate.get("name") or "").strip():
        raise LineRejected("body.candidate must be an object with a name", "invalid_candidate")
    job = body.get("job_description")
    if not isinstance(job, str) or not job.strip():
        raise LineRejected("body.job_description is missing", "missing_job_description")
    out = {k: v for k, v in body.items() if k not in ("candidate", "job_description")}
    out["messages"] = evaluation_messages(candidate, job)
    out.setdefault("temperature", settings["temperature"])
    out.setdefault("max_tokens", settings["max_tokens"])
    return out


@hookimpl
def batchserver_parse_answer(text: str):
    return parse_verdict(text)


def write_csv(records: Iterable[Mapping[str, Any]], stream: IO[bytes]) -> None:
    """One CSV row per record, in input order, written as it goes."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
    try:
        writer = csv.writer(text)
        writer.writerow(CSV_COLUMNS)
        for record in records:
            verdict = record.get("parsed") or parse_verdict(record.get("answer")) or {}
            who = candidate_from_messages(record.get("messages") or [])
            writer.writerow(
                [
                    record.get("custom_id", ""),
                    who.get("name", ""),
                    who.get("role", ""),
                    "" if verdict.get("score") is None else verdict["score"],
                    verdict.get("recommendation", ""),
                    "; ".join(verdict.get("strengths", [])),
                    "; ".join(verdict.get("concerns", [])),
                ]
            )
    finally:
        text.flush()
        text.detach()  # the stream belongs to the caller: do not close it


@hookimpl
def batchserver_export_formats():
    return [
        ExportFormat(
            EXPORT_ID,
            "Candidate evaluations (CSV)",
            "csv",
            "text/csv",
            write_csv,
            description="name, role, score, recommendation, strengths, concerns per candidate",
        )
    ]


def batch_verdicts(batch_id: str) -> list[dict[str, Any]]:
    """Each candidate of a batch with its verdict (score None when none could be read)."""
    out = []
    for row in host.iter_results(batch_id, statuses=("completed", "failed")):
        who = candidate_from_messages(host.prompt_messages(row.body))
        verdict = parse_verdict(host.answer_text(row.response_body)) or {}
        out.append({"custom_id": row.custom_id, **who, **verdict, "status": row.status})
    return out


def ranking(verdicts: list[dict[str, Any]]) -> ui.Table:
    ranked = sorted(verdicts, key=lambda v: -(v.get("score") if v.get("score") is not None else -1))
    rows = [
        [
            rank,
            v.get("name", ""),
            v.get("role", ""),
            ui.Bar(v.get("score"), 10, f"{v['score']:g}/10" if v.get("score") is not None else ""),
            v.get("recommendation") or "no verdict",
            v.get("strengths", []),
            v.get("concerns", []),
        ]
        for rank, v in enumerate(ranked, start=1)
    ]
    columns = ["#", "Candidate", "Role", "Score", "Recommendation", "Strengths", "Concerns"]
    return ui.Table(columns, rows, id="candidate-ranking", empty="No candidate answered yet.")


@hookimpl
def batchserver_render_component(component: str, data: dict[str, Any]):
    if data.get("batch_id"):
        batch_id = str(data["batch_id"])
        return [
            ranking(batch_verdicts(batch_id)),
            ui.Link("Download as CSV", f"/plugins/export/{EXPORT_ID}?batch_id={batch_id}"),
        ]
    return [ranking([v for v in data.get("verdicts", []) if isinstance(v, dict)])]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "candidate"


def candidate_lines(
    profiles: list[dict[str, Any]], job: str, model: str, settings: dict[str, Any]
) -> list[dict[str, Any]]:
    """Evaluation lines, the schema hook applied (so the batch runs as it is uploaded)."""
    if not model:
        raise ProfileError("Pick a model.")
    if not job.strip():
        raise ProfileError("Paste the job description.")
    lines = []
    for number, profile in enumerate(profiles, start=1):
        raw = {"model": model, "candidate": profile, "job_description": job}
        lines.append(
            {
                "custom_id": f"cand-{number}-{_slug(str(profile['name']))}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": batchserver_transform_line(raw, settings),
            }
        )
    return lines


def _form(request: PageRequest) -> ui.Form:
    models = [(m, m) for m in host.active_models()]
    return ui.Form(
        id="candidate-form",
        fields=[
            ui.Field("model", "Model", "select", request.get("model"), models, required=True),
            ui.Field(
                "job_description", "Job description", "textarea", request.get("job_description")
            ),
            ui.Field(
                "candidates",
                "Candidates (CSV with name, role, experience, skills — or JSONL)",
                "textarea",
                request.get("candidates"),
            ),
            ui.Field("upload", "…or upload a .csv / .jsonl file", "file"),
        ],
        buttons=(("preview", "Preview prompts"), ("submit", "Evaluate")),
    )


def _posted(request: PageRequest, settings: dict[str, Any]) -> list[Any]:
    upload = request.files.get("upload")
    text = upload.read().decode("utf-8-sig") if upload else request.get("candidates")
    lines = candidate_lines(
        read_profiles(text), request.get("job_description"), request.get("model"), settings
    )
    if request.form.get("action") != "submit":
        preview = "".join(host.jsonl(lines[: settings["preview_lines"]]).decode())
        return [
            ui.Notice(f"{len(lines)} candidates; the first prompts:"),
            ui.Code(preview, id="jsonl-preview"),
        ]
    metadata = {"batchserver_plugins": PLUGIN_ID, "source": PLUGIN_ID}
    batch = host.submit_batch(lines, filename="candidates.jsonl", metadata=metadata)
    return [
        ui.Notice(f"Batch {batch.id} submitted: {len(lines)} candidates.", "success"),
        ui.Link(f"Open batch {batch.id}", host.batch_page_url(batch.id)),
        ui.Link("See the ranking", f"/plugins/{PLUGIN_ID}/evaluate?batch_id={batch.id}"),
    ]


@hookimpl
def batchserver_render_page(page: str, request: PageRequest, settings: dict[str, Any]):
    widgets: list[Any] = []
    if request.method == "POST" and request.form.get("action") in ("preview", "submit"):
        try:
            widgets += _posted(request, settings)
        except (ProfileError, DomainError) as exc:
            widgets.append(ui.Notice(getattr(exc, "message", str(exc)), "error"))
    batch_id = request.query.get("batch_id", "").strip()
    if batch_id:
        try:
            batch = host.get_batch(batch_id)
            widgets += [
                ui.Heading(f"Ranking of {batch_id} ({batch.status})"),
                *batchserver_render_component("ranking", {"batch_id": batch_id}),
            ]
        except DomainError as exc:
            widgets.append(ui.Notice(exc.message, "error"))
    return [*widgets, _form(request)]
