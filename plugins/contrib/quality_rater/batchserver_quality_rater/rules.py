"""Rule-based scores: no model needed (pure functions)."""

from __future__ import annotations

import json
import re
from typing import Any

from plugins.types import Score

DEFAULT_MAX_CHARS = 4000
REFUSALS = re.compile(
    r"\b(i'?m sorry,? but|i am sorry,? but|i can(?:no|'|’)t (?:help|assist|do that|provide|comply)|"
    r"i cannot (?:help|assist|provide|comply)|i (?:am|'m) (?:not able|unable) to|"
    r"as an ai(?: language model)?|i won'?t be able to|i must decline)",
    re.IGNORECASE,
)
FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)
TOKEN = re.compile(r"[a-z0-9]+")


def length_score(answer: str, min_chars: int, max_chars: int) -> Score:
    chars = len(answer.strip())
    if chars < min_chars:
        value = chars / min_chars if min_chars else 0.0
        why = f"shorter than {min_chars} characters"
    elif chars > max_chars:
        value, why = max_chars / chars, f"longer than {max_chars} characters"
    else:
        value, why = 1.0, f"within {min_chars}–{max_chars} characters"
    return Score("length", round(value, 4), raw=chars, scale="characters", explanation=why)


def refusal_score(answer: str) -> Score:
    match = REFUSALS.search(answer[:400])
    if match:
        return Score("refusal", 0.0, raw=1, scale="0-1", explanation=f"refuses: {match.group(0)!r}")
    return Score("refusal", 1.0, raw=0, scale="0-1", explanation="no refusal found")


def expects_json(prompt: str, body: dict[str, Any]) -> bool:
    response_format = (body or {}).get("response_format") or {}
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        return True
    return "json" in (prompt or "").lower()


def json_score(answer: str) -> Score:
    text = FENCE.sub("", answer.strip())
    try:
        json.loads(text)
    except ValueError as exc:
        return Score("valid_json", 0.0, raw=0, scale="0-1", explanation=f"not JSON: {exc}")
    return Score("valid_json", 1.0, raw=1, scale="0-1", explanation="parses as JSON")


def tokens(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens, as rouge-score's default tokenizer makes them."""
    return TOKEN.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(answer: str, reference: str) -> Score:
    """ROUGE-L F1 of the answer against the reference (longest common token subsequence)."""
    a, r = tokens(answer), tokens(reference)
    common = lcs_length(a, r) if a and r else 0
    if not common:
        return Score("rouge_l", 0.0, raw=0.0, scale="F1", explanation="nothing in common")
    precision, recall = common / len(a), common / len(r)
    f1 = 2 * precision * recall / (precision + recall)
    return Score(
        "rouge_l",
        round(f1, 4),
        raw=round(f1, 4),
        scale="F1",
        explanation=f"precision {precision:.2f}, recall {recall:.2f}",
    )


def rule_scores(
    answer: str, prompt: str, reference: str | None, body: dict[str, Any], settings: dict[str, Any]
) -> list[Score]:
    scores = [
        length_score(answer, settings["min_chars"], settings["max_chars"]),
        refusal_score(answer),
    ]
    if expects_json(prompt, body):
        scores.append(json_score(answer))
    if reference:
        scores.append(rouge_l(answer, reference))
    return scores
