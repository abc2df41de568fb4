"""The benchmark dataset format: one JSON object per line, checked line by line.

``{"id": optional string, "messages": [{"role", "content"}, …], "reference": optional string,
"tags": optional list of strings}`` — the format the curation app exports gold sets in. Every
line is checked before anything is saved; all the bad lines are reported by number at once.
Blank lines are skipped; keys beyond these four are ignored (room for later fields).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchserver.errors import Invalid

ROLES = {"system", "developer", "user", "assistant", "tool"}
MAX_ID_CHARS = 64
MAX_REPORTED_ERRORS = 20
DATA_DIR = Path(__file__).resolve().parent / "builtin_datasets"

# The datasets shipped with the project: name → (file, description).
BUILTINS: dict[str, tuple[str, str]] = {
    "builtin/arithmetic": (
        "arithmetic.jsonl",
        "20 small sums, differences, products and quotients; the reference is the number.",
    ),
    "builtin/capitals": (
        "capitals.jsonl",
        "The capitals of 20 countries; the reference is the city's name.",
    ),
}


@dataclass
class ParsedItem:
    """One valid line of a dataset."""

    item_id: str
    messages: list[dict[str, Any]]
    reference: str | None = None
    tags: list[str] = field(default_factory=list)


class InvalidDataset(Invalid):
    """A dataset with bad lines: ``line_errors`` holds every ``(line number, message)``."""

    default_code = "invalid_dataset"

    def __init__(self, line_errors: list[tuple[int, str]], param: str = "file") -> None:
        shown = "; ".join(f"line {n}: {m}" for n, m in line_errors[:MAX_REPORTED_ERRORS])
        more = len(line_errors) - MAX_REPORTED_ERRORS
        suffix = f"; and {more} more bad lines" if more > 0 else ""
        super().__init__(
            f"The dataset has {len(line_errors)} invalid line(s), nothing was saved: "
            f"{shown}{suffix}.",
            param=param,
        )
        self.line_errors = line_errors


def _check_messages(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return "'messages' must be a non-empty list of {role, content} objects"
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            return f"messages[{i}] must be an object"
        if message.get("role") not in ROLES:
            return f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}"
        if not isinstance(message.get("content"), (str, list)):
            return f"messages[{i}].content must be a string (or a list of content parts)"
    return None


def parse_line(obj: Any, number: int) -> ParsedItem | str:
    """A parsed item, or the reason the line is not one."""
    if not isinstance(obj, dict):
        return "a line must be a JSON object"
    problem = _check_messages(obj.get("messages"))
    if problem:
        return problem
    item_id = obj.get("id")
    if item_id is None:
        item_id = str(number)
    elif not isinstance(item_id, str) or not item_id.strip() or len(item_id) > MAX_ID_CHARS:
        return f"'id' must be a non-empty string of at most {MAX_ID_CHARS} characters"
    reference = obj.get("reference")
    if isinstance(reference, (int, float)) and not isinstance(reference, bool):
        reference = str(reference)  # "reference": 42 means the answer "42"
    if reference is not None and not isinstance(reference, str):
        return "'reference' must be a string when given"
    tags = obj.get("tags")
    if tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return "'tags' must be a list of strings when given"
    return ParsedItem(item_id, obj["messages"], reference, tags)


def parse_jsonl(lines: Iterable[bytes | str], param: str = "file") -> list[ParsedItem]:
    """Every item of a JSONL dataset; InvalidDataset naming each bad line, Invalid if empty."""
    items: list[ParsedItem] = []
    errors: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, 1):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            errors.append((number, "not UTF-8 text"))
            continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            errors.append((number, f"not valid JSON ({exc.msg})"))
            continue
        parsed = parse_line(obj, number)
        if isinstance(parsed, str):
            errors.append((number, parsed))
        elif parsed.item_id in seen:
            errors.append(
                (number, f"duplicate id {parsed.item_id!r} (line {seen[parsed.item_id]})")
            )
        else:
            seen[parsed.item_id] = number
            items.append(parsed)
    if errors:
        raise InvalidDataset(errors, param=param)
    if not items:
        raise Invalid(
            "The dataset is empty: it has no prompt line.", param=param, code="empty_dataset"
        )
    return items


def builtin_items(name: str) -> list[ParsedItem]:
    """The items of a shipped dataset."""
    filename, _ = BUILTINS[name]
    with (DATA_DIR / filename).open("rb") as lines:
        return parse_jsonl(lines)


def to_jsonl(items: Iterable[ParsedItem]) -> str:
    """Items back in the dataset format (for exports and tests)."""
    return "".join(
        json.dumps(
            {"id": i.item_id, "messages": i.messages, "reference": i.reference, "tags": i.tags},
            ensure_ascii=False,
        )
        + "\n"
        for i in items
    )
