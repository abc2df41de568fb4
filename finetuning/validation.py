"""Training files checked before anything runs, every problem named with its line.

A training file is chat JSONL: one ``{"messages": [{"role", "content"}, …]}`` per line, at least
one assistant turn (which may carry ``weight`` 0 or 1), roles OpenAI knows, and no example longer
than the model's context once rendered with its own chat template.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

ROLES = {"system", "developer", "user", "assistant", "tool"}
MAX_REPORTED = 20  # problems listed in one error message


@dataclass
class FileReport:
    """What a file holds: the number of examples, their digests, and every problem by line."""

    examples: int = 0
    digests: dict[str, int] = field(default_factory=dict)  # example digest -> first line
    problems: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_example(value: Any) -> str | None:
    """Why one parsed line is not a training example (None when it is one)."""
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
        return "each line must be a JSON object with a 'messages' list"
    messages = value["messages"]
    if not messages:
        return "'messages' is empty"
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"message {index} is not an object"
        role = message.get("role")
        if role not in ROLES:
            return f"message {index} has an unknown role {role!r}"
        content = message.get("content")
        if not isinstance(content, str) and not (role == "assistant" and message.get("tool_calls")):
            return f"message {index} has no text 'content'"
        if "weight" in message and (role != "assistant" or message["weight"] not in (0, 1)):
            return f"message {index}: 'weight' must be 0 or 1, on assistant messages only"
    if not any(m.get("role") == "assistant" for m in messages):
        return "no assistant message to learn from"
    if not any(m.get("role") == "assistant" and m.get("weight", 1) == 1 for m in messages):
        return "every assistant message has weight 0: nothing to learn from"
    return None


def digest(messages: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


def check_file(
    lines: Iterable[bytes], count_tokens: Any, max_tokens: int, report: FileReport | None = None
) -> FileReport:
    """Check every line; ``count_tokens(messages)`` gives an example's length in tokens."""
    report = report or FileReport()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            report.problems.append((number, f"not valid JSON ({exc})"))
            continue
        problem = check_example(value)
        if problem is None:
            tokens = count_tokens(value["messages"])
            if tokens > max_tokens:
                problem = (
                    f"too long: {tokens} tokens after the chat template, the limit is {max_tokens}"
                )
        if problem:
            report.problems.append((number, problem))
            continue
        report.examples += 1
        report.digests.setdefault(digest(value["messages"]), number)
    return report


def describe(problems: list[tuple[int, str]], file_id: str) -> str:
    """One message naming every problem (the first ``MAX_REPORTED``) with its line."""
    shown = "; ".join(f"line {line}: {text}" for line, text in problems[:MAX_REPORTED])
    more = len(problems) - MAX_REPORTED
    tail = f" (and {more} more)" if more > 0 else ""
    return f"File {file_id} is not a valid training file: {shown}{tail}."


def overlap(training: FileReport, validation: FileReport) -> list[tuple[int, str]]:
    """Examples of the validation file that are also in the training file, by line."""
    return [
        (line, f"the same example is line {training.digests[key]} of the training file")
        for key, line in validation.digests.items()
        if key in training.digests
    ]


def token_counter(tokenizer: Any) -> Any:
    """Length of a conversation in tokens, rendered with the model's own chat template."""

    def count(messages: list[dict[str, Any]]) -> int:
        plain = [{k: v for k, v in m.items() if k != "weight"} for m in messages]
        text = tokenizer.apply_chat_template(plain, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def read_lines(handle: IO[bytes]) -> Iterable[bytes]:
    with handle:
        yield from handle
