"""Every line of a batch input file is checked before anything reaches the engine.

The checks are pure: they read bytes and yield parsed lines or errors naming the physical line,
so the same code serves batch creation and a dry run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from batchserver import fastjson

MAX_CUSTOM_ID = 64
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class LineError:
    code: str
    line: int | None
    message: str
    param: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "line": self.line, "message": self.message, "param": self.param}


@dataclass(frozen=True)
class ParsedLine:
    line: int
    custom_id: str
    body: dict[str, Any]


def _innermost(stream: Any) -> Any:
    """The file object under wrappers such as Django's ``File``: its own line iteration (in C,
    on ``\n``, as the upload counts lines) instead of the wrapper's (in Python, a tenth of a
    200 MB file's validation)."""
    while hasattr(getattr(stream, "file", None), "readline"):
        stream = stream.file
    return stream


def physical_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, content) without the BOM, CR/LF endings and blank lines."""
    for number, raw in enumerate(_innermost(stream), start=1):
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        raw = raw.rstrip(b"\r\n")
        if raw.strip():
            yield number, raw


def _decode(number: int, raw: bytes) -> dict[str, Any] | LineError:
    try:  # the fast path: a well-formed line parsed by orjson at once
        value = fastjson.orjson.loads(raw) if fastjson.orjson is not None else None
    except fastjson.orjson.JSONDecodeError:
        value = None  # the slow path below says what is wrong (or accepts what orjson refuses)
    if isinstance(value, dict):
        if b"\\u0000" in raw and _holds_nul(value):
            return LineError(
                "invalid_json_line", number, f"Line {number} contains a NUL (\\u0000) character."
            )
        return value
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return LineError(
            "invalid_encoding", number, f"Line {number} is not valid UTF-8 (byte {exc.start})."
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return LineError(
            "invalid_json_line",
            number,
            f"Line {number} is not valid JSON: {exc.msg} at column {exc.colno}.",
        )
    if not isinstance(value, dict):
        return LineError(
            "invalid_json_line",
            number,
            f"Line {number} must be a JSON object, not {type(value).__name__}.",
        )
    if "\\u0000" in text and _holds_nul(value):  # PostgreSQL cannot store one
        return LineError(
            "invalid_json_line", number, f"Line {number} contains a NUL (\\u0000) character."
        )
    return value


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _check_envelope(number: int, obj: dict[str, Any], endpoint: str) -> LineError | None:
    custom_id = obj.get("custom_id")
    if custom_id is None or custom_id == "":
        return LineError(
            "missing_required_parameter", number, f"Line {number} has no custom_id.", "custom_id"
        )
    if not isinstance(custom_id, str):
        return LineError(
            "invalid_custom_id", number, f"Line {number}: custom_id must be a string.", "custom_id"
        )
    if len(custom_id) > MAX_CUSTOM_ID:
        return LineError(
            "invalid_custom_id",
            number,
            f"Line {number}: custom_id is longer than {MAX_CUSTOM_ID} characters.",
            "custom_id",
        )
    method = obj.get("method")
    if method != "POST":
        return LineError(
            "invalid_method",
            number,
            f"Line {number}: method must be 'POST', got {method!r}.",
            "method",
        )
    url = obj.get("url")
    if url != endpoint:
        return LineError(
            "invalid_url",
            number,
            f"Line {number}: url {url!r} does not match the batch endpoint {endpoint!r}.",
            "url",
        )
    body = obj.get("body")
    if not isinstance(body, dict):
        return LineError(
            "invalid_body", number, f"Line {number}: body must be a JSON object.", "body"
        )
    if body.get("stream"):
        return LineError(
            "stream_not_supported",
            number,
            f"Line {number}: streaming is not supported in a batch.",
            "body.stream",
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return LineError(
            "missing_required_parameter",
            number,
            f"Line {number}: body.model is required.",
            "body.model",
        )
    return None


def check_lines(
    stream: IO[bytes],
    endpoint: str,
    model_error: Callable[[str, str], tuple[str, str] | None],
    *,
    max_lines: int,
    allow_mixed_models: bool = False,
) -> Iterator[ParsedLine | LineError]:
    """Yield each valid line, or an error for each broken one; the caller decides what to keep.

    ``model_error(model, endpoint)`` returns (code, message) when the registry cannot serve it.
    """
    seen: set[str] = set()
    models: dict[str, tuple[str, str] | None] = {}
    first_model: str | None = None
    count = 0
    for number, raw in physical_lines(stream):
        count += 1
        if count > max_lines:
            yield LineError(
                "too_many_requests", number, f"The file has more than {max_lines} requests."
            )
            return
        obj = _decode(number, raw)
        if isinstance(obj, LineError):
            yield obj
            continue
        error = _check_envelope(number, obj, endpoint)
        if error is None:
            error = _check_model(number, obj["body"]["model"], endpoint, models, model_error)
        if error is None and not allow_mixed_models:
            first_model = first_model or obj["body"]["model"]
            if obj["body"]["model"] != first_model:
                error = LineError(
                    "mismatched_model",
                    number,
                    f"Line {number}: model {obj['body']['model']!r} differs from "
                    f"{first_model!r}; a batch uses one model.",
                    "body.model",
                )
        if error is None and obj["custom_id"] in seen:
            error = LineError(
                "duplicate_custom_id",
                number,
                f"Line {number}: custom_id {obj['custom_id']!r} is used twice.",
                "custom_id",
            )
        if error is not None:
            yield error
            continue
        seen.add(obj["custom_id"])
        yield ParsedLine(number, obj["custom_id"], obj["body"])
    if count == 0:
        yield LineError("empty_file", None, "The input file has no requests.")


def _check_model(
    number: int,
    model: str,
    endpoint: str,
    cache: dict[str, tuple[str, str] | None],
    model_error: Callable[[str, str], tuple[str, str] | None],
) -> LineError | None:
    if model not in cache:
        cache[model] = model_error(model, endpoint)
    problem = cache[model]
    if problem is None:
        return None
    code, message = problem
    return LineError(code, number, f"Line {number}: {message}", "body.model")
