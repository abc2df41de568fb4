"""Candidate profiles in, evaluation prompts out; verdicts parsed back (pure functions)."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

RECOMMENDATIONS = ("strong_yes", "yes", "maybe", "no")
INSTRUCTIONS = (
    "You evaluate job candidates for a hiring team. Judge the candidate only on the job "
    "description and the profile given. Answer with one JSON object and nothing else: "
    '{"score": <0-10>, "strengths": [<short phrases>], "concerns": [<short phrases>], '
    '"recommendation": "strong_yes" | "yes" | "maybe" | "no"}'
)
PROFILE_FIELDS = ("name", "role", "experience", "skills")
JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
SCORE = re.compile(r"score\s*[:=]\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
RECOMMEND = re.compile(r"recommendation\s*[:=]\s*\"?([a-z_ ]+)", re.IGNORECASE)
LISTED = r"{}\s*[:=]\s*(.+)"
PROFILE_LINE = re.compile(r"^(Candidate|Role|Experience|Skills): (.*)$", re.MULTILINE)


class ProfileError(ValueError):
    pass


def _skills(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value or "")


def profile_text(candidate: dict[str, Any]) -> str:
    """The profile as fixed lines; ``candidate_from_messages`` reads them back."""
    return (
        f"Candidate: {candidate.get('name', '')}\n"
        f"Role: {candidate.get('role', '')}\n"
        f"Experience: {candidate.get('experience', '')}\n"
        f"Skills: {_skills(candidate.get('skills'))}"
    )


def evaluation_messages(candidate: dict[str, Any], job_description: str) -> list[dict[str, str]]:
    user = (
        f"Job description:\n{job_description.strip()}\n\n{profile_text(candidate)}\n\n"
        "Evaluate this candidate for the job."
    )
    return [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": user}]


def candidate_from_messages(messages: list[dict[str, Any]]) -> dict[str, str]:
    """name, role, experience, skills back out of an evaluation prompt."""
    text = next((str(m.get("content", "")) for m in messages if m.get("role") == "user"), "")
    found = {k.lower(): v.strip() for k, v in PROFILE_LINE.findall(text)}
    return {"name": found.pop("candidate", ""), **found}


def read_profiles(text: str) -> list[dict[str, Any]]:
    """Profiles from CSV (a header row naming the fields) or JSONL (one object per line)."""
    stripped = text.strip()
    if not stripped:
        raise ProfileError("No candidates: paste or upload a CSV or JSONL file.")
    if stripped.startswith("{"):
        profiles = []
        for number, line in enumerate(stripped.splitlines(), start=1):
            if line.strip():
                try:
                    value = json.loads(line)
                except ValueError as exc:
                    raise ProfileError(f"Line {number} is not JSON: {exc}") from None
                if not isinstance(value, dict):
                    raise ProfileError(f"Line {number} is not a JSON object.")
                profiles.append(value)
    else:
        profiles = [dict(row) for row in csv.DictReader(io.StringIO(stripped))]
    for number, profile in enumerate(profiles, start=1):
        if not str(profile.get("name") or "").strip():
            raise ProfileError(f"Candidate {number} has no name.")
    return profiles


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[;\n]|,(?![^()]*\))", value) if part.strip()]
    return []


def _recommendation(value: Any) -> str:
    text = str(value or "").strip().lower().replace(" ", "_").replace("-", "_")
    return text if text in RECOMMENDATIONS else text[:40]


def _score(value: Any) -> float | None:
    try:
        return max(0.0, min(10.0, float(value)))
    except (TypeError, ValueError):
        return None


def parse_verdict(text: str | None) -> dict[str, Any] | None:
    """score (0–10), strengths, concerns, recommendation from an answer; None if none is there."""
    if not text:
        return None
    match = JSON_OBJECT.search(text)
    if match:
        try:
            data = json.loads(match.group(0))
        except ValueError:
            data = None
        if isinstance(data, dict) and ("score" in data or "recommendation" in data):
            return {
                "score": _score(data.get("score")),
                "strengths": _as_list(data.get("strengths")),
                "concerns": _as_list(data.get("concerns")),
                "recommendation": _recommendation(data.get("recommendation")),
            }
    score, recommend = SCORE.search(text), RECOMMEND.search(text)
    if not score and not recommend:
        return None

    def listed(label: str) -> list[str]:
        found = re.search(LISTED.format(label), text, re.IGNORECASE)
        return _as_list(found.group(1)) if found else []

    return {
        "score": _score(score.group(1)) if score else None,
        "strengths": listed("strengths"),
        "concerns": listed("concerns"),
        "recommendation": _recommendation(recommend.group(1)) if recommend else "",
    }
