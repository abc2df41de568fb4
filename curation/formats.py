"""The export formats of curation: one line of JSON per record (or per label, per pair).

Each writer takes records lazily and writes as it goes (flat memory). ``finetune_line`` is
OpenAI's chat fine-tuning line, with the correction in place of the model's answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from batchserver import fastjson
from curation.models import labels_list

# What an export reads of a record, in this order (``ExportRecord.from_row``); the prompt's
# messages come as JSON text, parsed here with orjson rather than by the ORM.
EXPORT_COLUMNS = (
    "id",
    "custom_id",
    "batch_id",
    "model",
    "messages_json",
    "content__answer",
    "correction",
    "rating",
    "thumb",
    "labels",
    "gold",
    "status",
    "note",
    "prompt_hash",
)


@dataclass(slots=True)
class ExportRecord:
    """A record as the export formats read it: plain values, no model instance (an export of
    50,000 records builds 50,000 of these)."""

    pk: int
    custom_id: str
    batch_id: str
    model: str
    messages: list[dict[str, Any]]
    answer: str
    correction: str | None
    rating: int | None
    thumb: int | None
    labels: str
    gold: bool
    status: str
    note: str
    prompt_hash: str

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ExportRecord:
        values = list(row)
        messages = values[4]
        values[4] = fastjson.loads(messages) if isinstance(messages, (str, bytes)) else messages
        values[5] = values[5] or ""
        return cls(*values)

    @property
    def final_answer(self) -> str:
        """The answer an export trains on: the correction when there is one."""
        return self.correction if self.correction is not None else self.answer

    @property
    def label_list(self) -> list[str]:
        return labels_list(self.labels)


# Fine-tuning accepts these roles (issue #12's validation); "developer" is the newer "system".
FINETUNE_ROLES = {"system", "user", "assistant"}
ROLE_ALIASES = {"developer": "system"}


def _content(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)  # type: ignore[arg-type]
    return None


def chat_messages(record: ExportRecord) -> list[dict[str, str]] | None:
    """The prompt as plain {role, content} messages fine-tuning accepts, or None if it has a
    turn fine-tuning cannot take (a tool call, an image)."""
    out = []
    for message in record.messages:
        role = str(message.get("role"))
        role = ROLE_ALIASES.get(role, role)
        content = _content(message.get("content"))
        if role not in FINETUNE_ROLES or content is None:
            return None
        out.append({"role": role, "content": content})
    return out


def finetune_line(record: ExportRecord) -> dict[str, Any] | None:
    messages = chat_messages(record)
    if messages is None:
        return None
    return {"messages": [*messages, {"role": "assistant", "content": record.final_answer}]}


def gold_line(record: ExportRecord) -> dict[str, Any]:
    """The benchmark dataset format (``benchmarks.datasets``): the final answer is the reference."""
    return {
        "id": f"rec-{record.pk}",
        "messages": record.messages,
        "reference": record.final_answer,
        "tags": record.label_list,
    }


def icl_packs(records: Iterable[ExportRecord], k: int) -> Iterator[dict[str, Any]]:
    """The k best examples per label as few-shot messages; records come ordered by label
    group then best first (the caller's query), so one pack is built at a time."""
    packs: dict[str, list[dict[str, str]]] = {}
    counts: dict[str, int] = {}
    for record in records:
        messages = chat_messages(record)
        if messages is None:
            continue
        for label in record.label_list or [""]:
            if counts.get(label, 0) >= k:
                continue
            counts[label] = counts.get(label, 0) + 1
            turn = [m for m in messages if m["role"] != "system"]
            packs.setdefault(label, []).extend(
                [*turn, {"role": "assistant", "content": record.final_answer}]
            )
    for label in sorted(packs):
        yield {"label": label or None, "examples": counts[label], "messages": packs[label]}


def dpo_pairs(groups: Iterable[list[ExportRecord]]) -> Iterator[dict[str, Any]]:
    """Preference pairs: a correction is preferred to the answer it corrects; among answers to
    the same prompt, the best-rated is preferred to the worst-rated (when ratings differ)."""
    for group in groups:
        for record in group:
            if record.correction is not None and record.correction != record.answer:
                yield _pair(record, record.correction, record.answer)
        rated = [r for r in group if r.rating is not None]
        if len(rated) >= 2:
            best = max(rated, key=lambda r: (r.rating, -r.pk))
            worst = min(rated, key=lambda r: (r.rating, r.pk))
            if best.rating != worst.rating and best.final_answer != worst.answer:
                yield _pair(best, best.final_answer, worst.answer)


def _pair(record: ExportRecord, chosen: str, rejected: str) -> dict[str, Any]:
    return {
        "input": {"messages": record.messages},
        "preferred_output": [{"role": "assistant", "content": chosen}],
        "non_preferred_output": [{"role": "assistant", "content": rejected}],
    }


def plugin_record(record: ExportRecord) -> dict[str, Any]:
    """What a plugin's export format receives for one record."""
    return {
        "id": record.pk,
        "custom_id": record.custom_id,
        "batch_id": record.batch_id or None,
        "model": record.model,
        "messages": record.messages,
        "answer": record.answer,
        "correction": record.correction,
        "final_answer": record.final_answer,
        "rating": record.rating,
        "thumb": record.thumb,
        "labels": record.label_list,
        "gold": record.gold,
        "status": record.status,
        "note": record.note,
    }


def line(value: dict[str, Any]) -> bytes:
    return fastjson.dumps_line(value)
