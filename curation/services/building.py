"""Records from where answers come from: a batch's rows, an uploaded JSONL, a benchmark run."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from batchserver import fastjson
from batchserver.errors import Invalid
from curation.models import Record
from jobs.services import results

MAX_REPORTED_ERRORS = 20


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else json.dumps(content)


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The prompt as one text: what the workbench shows and the text search reads."""
    return "\n".join(f"{m.get('role', '')}: {_text(m.get('content'))}" for m in messages)


def search_text(messages: list[dict[str, Any]], answer: str, correction: str | None = None) -> str:
    """What the text filter searches: prompt, answer and correction, in lower case."""
    parts = [_text(m.get("content")) for m in messages]
    return "\n".join([*parts, answer, correction or ""]).lower()


def _canonical(messages: list[dict[str, Any]]) -> bytes:
    try:
        return orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # what orjson refuses (integers beyond 64 bits)
        return json.dumps(messages, sort_keys=True).encode()


def _hash(*parts: bytes) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for part in parts:
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()


def record_values(
    messages: list[dict[str, Any]], answer: str, *, source: str, **fields: Any
) -> dict[str, Any]:
    """A new record's fields, with its search text and hashes filled in."""
    canonical = _canonical(messages)
    return {
        "source": source,
        "messages": messages,
        "prompt": prompt_text(messages),
        "answer": answer,
        "search": search_text(messages, answer),
        "prompt_hash": _hash(canonical),
        "content_hash": _hash(canonical, answer.encode("utf-8", "replace")),
        **fields,
    }


def records_from_batch(batch_id: str) -> Iterator[dict[str, Any]]:
    """The fields of one new record per answered line of a batch, in input order (streamed):
    plain dicts, no model instance per row."""
    for row in results.iter_results(batch_id, statuses=("completed",)):
        body = fastjson.loads(row.body)
        answer = results.answer_text(
            fastjson.loads(row.response_body) if row.response_body else None
        )
        if answer is None:
            continue
        yield record_values(
            results.prompt_messages(body),
            answer,
            source=Record.Source.BATCH,
            batch_id=batch_id,
            request_row=row.id,
            custom_id=row.custom_id,
            model=str(body.get("model") or "")[:200],
            input_tokens=row.input_tokens or 0,
            output_tokens=row.output_tokens or 0,
        )


class InvalidUpload(Invalid):
    """An uploaded JSONL with bad lines: ``line_errors`` holds every ``(line, message)``."""

    default_code = "invalid_file"

    def __init__(self, line_errors: list[tuple[int, str]], param: str = "file") -> None:
        shown = "; ".join(f"line {n}: {m}" for n, m in line_errors[:MAX_REPORTED_ERRORS])
        more = len(line_errors) - MAX_REPORTED_ERRORS
        super().__init__(
            f"The file has {len(line_errors)} invalid line(s), nothing was saved: {shown}"
            + (f"; and {more} more." if more > 0 else "."),
            param=param,
        )
        self.line_errors = line_errors


def _upload_record(obj: Any, number: int) -> dict[str, Any] | str:
    """A record from one upload line, or why the line is not one.

    A line is ``{"messages": [...], "answer": "...", "model"?, "custom_id"?}``, or a
    fine-tuning line whose last message is the assistant's answer.
    """
    if not isinstance(obj, dict):
        return "a line must be a JSON object"
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list of {role, content} objects"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            return f"messages[{i}] must be an object with a 'role'"
    answer = obj.get("answer")
    if answer is None and messages[-1].get("role") == "assistant" and len(messages) > 1:
        answer, messages = _text(messages[-1].get("content")), messages[:-1]
    if not isinstance(answer, str):
        return "'answer' must be a string (or the last message the assistant's)"
    for name in ("model", "custom_id"):
        if obj.get(name) is not None and not isinstance(obj.get(name), str):
            return f"'{name}' must be a string when given"
    return record_values(
        messages,
        answer,
        source=Record.Source.UPLOAD,
        model=(obj.get("model") or "")[:200],
        custom_id=(obj.get("custom_id") or str(number))[:200],
    )


def records_from_upload(lines: Iterable[bytes], max_lines: int) -> list[dict[str, Any]]:
    """Every record of an uploaded JSONL; ``InvalidUpload`` naming each bad line, else nothing."""
    records: list[dict[str, Any]] = []
    errors: list[tuple[int, str]] = []
    for number, raw in enumerate(lines, 1):
        if number > max_lines:
            raise Invalid(f"A file has at most {max_lines} lines.", param="file", code="too_many")
        if not raw.strip():
            continue
        try:
            obj = fastjson.loads(raw)
        except ValueError as exc:
            errors.append((number, f"not valid JSON ({exc})"))
            continue
        found = _upload_record(obj, number)
        if isinstance(found, str):
            errors.append((number, found))
        else:
            records.append(found)
    if errors:
        raise InvalidUpload(errors)
    if not records:
        raise Invalid("The file has no record line.", param="file", code="empty_file")
    return records
