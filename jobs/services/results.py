"""Reads of batches and their per-request results for other apps (curation, benchmarks, registry).

Other apps never import ``jobs.models``: they read what a batch produced through these
functions, which stream rows as plain named tuples (no model instance per row, so 50,000 lines
read in well under a second) and know how to pull the prompt and the answer out of the bodies.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, NamedTuple

from django.db.models import Count, Max, Sum

from batchserver.errors import NotFound
from batchserver.models import ApiKey
from jobs.models import Batch, BatchRequest

R = BatchRequest.Status


class ResultRow(NamedTuple):
    """One input line of a batch and what became of it."""

    id: int  # the row's primary key: stable, usable as a reference
    line: int
    custom_id: str
    status: str  # pending | completed | failed | expired | cancelled
    body: str  # the request body, as the client sent it (JSON text)
    response_status: int | None
    response_body: str  # the engine's JSON text ("" until answered)
    error: dict[str, Any] | None
    input_tokens: int
    output_tokens: int
    latency_ms: int | None
    finished_at: datetime | None


FIELDS = ResultRow._fields


def get_batch(batch_id: str, owner: ApiKey | None = None) -> Batch:
    """The batch ``batch_id`` (only if ``owner`` owns it, when given); NotFound otherwise."""
    queryset = Batch.objects.all() if owner is None else Batch.objects.owned_by(owner)
    try:
        return queryset.get(pk=batch_id)
    except Batch.DoesNotExist:
        raise NotFound("batch", batch_id, param="batch_id") from None


def existing_batch_ids(batch_ids: Iterable[str]) -> set[str]:
    """Which of ``batch_ids`` still exist (curation marks records whose batch was deleted)."""
    return set(Batch.objects.filter(pk__in=list(batch_ids)).values_list("pk", flat=True))


def iter_results(
    batch_id: str, *, statuses: Iterable[str] | None = None, chunk_size: int = 2000
) -> Iterator[ResultRow]:
    """The batch's rows in input order, streamed from the database in slices."""
    rows = BatchRequest.objects.filter(batch_id=batch_id)
    if statuses is not None:
        rows = rows.filter(status__in=list(statuses))
    for values in rows.order_by("line").values_list(*FIELDS).iterator(chunk_size=chunk_size):
        yield ResultRow(*values)


def prompt_messages(body: str | dict[str, Any]) -> list[dict[str, Any]]:
    """The chat messages of a request body; a completions prompt becomes one user message."""
    data = json.loads(body) if isinstance(body, str) else body
    if isinstance(data.get("messages"), list):
        return data["messages"]
    prompt = data.get("prompt", data.get("input", ""))
    return [{"role": "user", "content": prompt if isinstance(prompt, str) else json.dumps(prompt)}]


def answer_text(response_body: str | dict[str, Any] | None) -> str | None:
    """The first choice's text of a chat or completions response, None when there is none."""
    if not response_body:
        return None
    data = json.loads(response_body) if isinstance(response_body, str) else response_body
    choices = data.get("choices") or []
    if not choices:
        return None
    first = choices[0]
    if "message" in first:
        content = (first.get("message") or {}).get("content")
        return content if isinstance(content, str) else None
    text = first.get("text")
    return text if isinstance(text, str) else None


def model_usage(names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per model name: batches, requests, tokens and when it was last used, over every batch."""
    batches = Batch.objects.exclude(model="")
    if names is not None:
        batches = batches.filter(model__in=list(names))
    rows = batches.values("model").annotate(
        batches=Count("id"),
        requests=Sum("request_total"),
        completed=Sum("request_completed"),
        failed=Sum("request_failed"),
        input_tokens=Sum("input_tokens"),
        output_tokens=Sum("output_tokens"),
        last_used=Max("created_at"),
    )
    return {
        row["model"]: {
            "batches": row["batches"],
            "requests": row["requests"] or 0,
            "completed": row["completed"] or 0,
            "failed": row["failed"] or 0,
            "input_tokens": row["input_tokens"] or 0,
            "output_tokens": row["output_tokens"] or 0,
            "last_used_at": row["last_used"],
        }
        for row in rows
    }
