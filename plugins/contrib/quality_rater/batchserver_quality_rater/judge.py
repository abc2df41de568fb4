"""LLM-as-judge: a batch of rubric prompts on a chosen model, one per answer, read back later."""

from __future__ import annotations

import re
from typing import Any

from batchserver.errors import Invalid
from plugins.sdk import RatingJob, Score, host

PLUGIN_ID = "quality-rater"
SCORE = re.compile(r"score\s*[:=]?\s*(\d+(?:\.\d+)?)\s*(?:/\s*10)?", re.IGNORECASE)
BARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*10)?\b")
DEFAULT_RUBRIC = (
    "You are a strict grader. Rate how well the answer responds to the question: correct, "
    "complete, clear and honest. Reply with 'Score: N' where N is an integer from 1 (useless) "
    "to 10 (excellent), then one short sentence saying why."
)


def judge_key(batch_id: str) -> str:
    return f"judge:{batch_id}"


def judge_lines(batch_id: str, model: str, rubric: str, max_tokens: int) -> list[dict[str, Any]]:
    lines = []
    for row in host.iter_results(batch_id, statuses=("completed",)):
        answer = host.answer_text(row.response_body)
        if answer is None:
            continue
        messages = host.prompt_messages(row.body)
        question = next(
            (m.get("content") for m in reversed(messages) if m.get("role") == "user"), ""
        )
        user = f"Question:\n{question}\n\nAnswer:\n{answer}\n\nGrade the answer."
        lines.append(
            {
                "custom_id": row.custom_id,
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": model,
                    "messages": [
                        {"role": "system", "content": rubric},
                        {"role": "user", "content": user},
                    ],
                    "temperature": 0,
                    "max_tokens": max_tokens,
                },
            }
        )
    return lines


def start(batch_id: str, options: dict[str, Any], settings: dict[str, Any]) -> RatingJob:
    """Submit the judge batch for the completed answers of ``batch_id``."""
    model = options.get("model") or settings["judge_model"]
    if not model:
        raise Invalid(
            "No judge model: pick one, or set judge_model in the settings.", param="model"
        )
    rubric = options.get("rubric") or settings["judge_rubric"] or DEFAULT_RUBRIC
    host.get_batch(batch_id)  # NotFound for an unknown batch
    lines = judge_lines(batch_id, model, rubric, settings["judge_max_tokens"])
    if not lines:
        raise Invalid(f"Batch {batch_id} has no completed answers to judge.", param="batch_id")
    metadata = {"source": PLUGIN_ID, "judge_of": batch_id}
    judge = host.submit_batch(lines, filename=f"judge-{batch_id}.jsonl", metadata=metadata)
    host.save_record(
        PLUGIN_ID,
        judge_key(batch_id),
        {"judge_batch_id": judge.id, "model": model, "rubric": rubric},
    )
    return RatingJob(PLUGIN_ID, batch_id, judge.id, "started", f"{len(lines)} answers on {model}")


def parse_score(text: str) -> float | None:
    """The 1–10 grade in a judge's answer, or None."""
    match = SCORE.search(text) or BARE.search(text)
    if not match:
        return None
    return max(1.0, min(10.0, float(match.group(1))))


def scores(batch_id: str) -> dict[str, list[Score]] | None:
    """``llm_judge`` scores by custom_id, for the judge answers that are in so far."""
    record = host.load_record(PLUGIN_ID, judge_key(batch_id))
    if not record:
        return None
    out: dict[str, list[Score]] = {}
    for row in host.iter_results(record["judge_batch_id"], statuses=("completed",)):
        text = host.answer_text(row.response_body) or ""
        grade = parse_score(text)
        if grade is None:
            score = Score("llm_judge", None, scale="1-10", explanation=f"no score in: {text[:200]}")
        else:
            score = Score(
                "llm_judge",
                round((grade - 1) / 9, 4),
                raw=grade,
                scale="1-10",
                explanation=f"{record['model']}: {text[:300]}",
            )
        out[row.custom_id] = [score]
    return out
