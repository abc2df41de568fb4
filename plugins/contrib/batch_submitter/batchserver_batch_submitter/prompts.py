"""Turning what an operator pasted or uploaded into batch input lines (pure, no Django)."""

from __future__ import annotations

import csv
import io
import json
import string
from dataclasses import dataclass
from typing import Any

MODES = (("lines", "One prompt per line"), ("csv", "CSV rows with a prompt template"))


class PromptError(ValueError):
    """What the operator must fix, said plainly."""


@dataclass(frozen=True)
class Sampling:
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None

    def body_fields(self) -> dict[str, Any]:
        fields = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
        }
        return {k: v for k, v in fields.items() if v is not None}


def template_fields(template: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name]
    except ValueError as exc:
        raise PromptError(f"The template is not valid: {exc}") from None


def prompts_from_lines(text: str) -> list[tuple[str, str]]:
    """(custom_id, prompt) for each non-empty line."""
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    return [(f"prompt-{i}", p) for i, p in enumerate(prompts, start=1)]


def prompts_from_csv(text: str, template: str) -> list[tuple[str, str]]:
    """(custom_id, prompt) per CSV row: the template filled with the row's columns.

    Without a template, the first column is the prompt. An ``id`` or ``custom_id`` column names
    the lines (they must be unique).
    """
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    if not columns:
        raise PromptError("The CSV has no header row.")
    wanted = template_fields(template) if template.strip() else []
    missing = [name for name in wanted if name not in columns]
    if missing:
        raise PromptError(
            f"The template names columns the CSV does not have: {', '.join(missing)} "
            f"(columns: {', '.join(columns)})."
        )
    out, seen = [], set()
    for number, row in enumerate(reader, start=1):
        values = {k: (v or "") for k, v in row.items() if k is not None}
        prompt = template.format_map(values) if template.strip() else values[columns[0]]
        custom_id = (values.get("custom_id") or values.get("id") or f"row-{number}").strip()
        if custom_id in seen:
            raise PromptError(f"Row {number}: the id {custom_id!r} is used twice.")
        seen.add(custom_id)
        if prompt.strip():
            out.append((custom_id, prompt))
    return out


def build_lines(
    prompts: list[tuple[str, str]],
    *,
    model: str,
    system: str = "",
    sampling: Sampling | None = None,
    endpoint: str = "/v1/chat/completions",
) -> list[dict[str, Any]]:
    """One chat-completions batch line per prompt."""
    if not model:
        raise PromptError("Pick a model.")
    if not prompts:
        raise PromptError("There are no prompts: paste some or upload a file.")
    extra = (sampling or Sampling()).body_fields()
    lines = []
    for custom_id, prompt in prompts:
        messages = [{"role": "system", "content": system}] if system.strip() else []
        messages.append({"role": "user", "content": prompt})
        body = {"model": model, "messages": messages, **extra}
        lines.append({"custom_id": custom_id, "method": "POST", "url": endpoint, "body": body})
    return lines


def preview(lines: list[dict[str, Any]], count: int) -> str:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines[:count])
