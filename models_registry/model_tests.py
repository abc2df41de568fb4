"""Testing a model: a few prompts as an ordinary batch of the console key, then its figures.

The test batch goes through the same services, queue and worker as a client's (owned by
``ApiKey.console_key()``, tagged ``{"kind": "model_test"}``, so no client lists it); the worker
loads the model for it like for any batch. When the batch ends (``batch_status_changed``),
``finish_test`` reads it through ``jobs.services.results`` and records: the load the worker
reported (``engine_loaded``: seconds to ready, the engine's memory once ready), the engine's
peak memory over the load and the test's batch (sampled by the worker every 100 ms,
``PEAK_MEMORY_MEASURE``; ``engine_peak_memory`` raises it after each run that went higher),
output tokens per second over the engine's run (the longest request's latency bounds that one
engine call), the answers and the first error. A model whose test fails is no longer offered to
clients (``Model.objects.offered()``) until a later test passes or an operator forces it.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django_q.tasks import async_task

from batchserver.errors import Conflict, Invalid, NotFound
from batchserver.models import ApiKey
from jobs.services import batches as job_batches
from jobs.services import files as job_files
from jobs.services.results import ResultRow, answer_text, get_batch, iter_results
from models_registry.models import Model, ModelTest

TERMINAL = {"completed", "failed", "expired", "cancelled"}
DEFAULT_PROMPTS = (
    "What is 2 + 3? Answer with the number only.",
    "Name the capital of France in one word.",
    "Write one short sentence about the sea.",
)
MAX_PROMPTS = 20
TEST_PRIORITY = 50  # ahead of ordinary client work: the operator is waiting for it


def _check_prompts(prompts: Any) -> list[str]:
    if prompts in (None, "", []):
        return list(DEFAULT_PROMPTS)
    if isinstance(prompts, str):
        prompts = [p for p in prompts.splitlines() if p.strip()]
    if not isinstance(prompts, list) or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise Invalid("prompts must be a list of non-empty strings.", param="prompts")
    if len(prompts) > MAX_PROMPTS:
        raise Invalid(f"At most {MAX_PROMPTS} prompts per test.", param="prompts")
    return [p.strip() for p in prompts]


def _lines(model: Model, prompts: list[str], max_tokens: int) -> tuple[bytes, str]:
    bodies: list[dict[str, Any]]
    if model.kind == Model.Kind.EMBED:
        endpoint = "/v1/embeddings"
        bodies = [{"model": model.name, "input": p} for p in prompts]
    else:
        endpoint = "/v1/chat/completions"
        bodies = [
            {
                "model": model.name,
                "messages": [{"role": "user", "content": p}],
                "max_tokens": max_tokens,
                "temperature": 0,
            }
            for p in prompts
        ]
    lines = [
        json.dumps({"custom_id": f"t{i}", "method": "POST", "url": endpoint, "body": body})
        for i, body in enumerate(bodies)
    ]
    return ("\n".join(lines) + "\n").encode(), endpoint


@transaction.atomic
def start_test(
    model: Model, *, prompts: Any = None, max_tokens: Any = 32, created_by: str = ""
) -> ModelTest:
    """Queue a test of ``model``: its batch is created now and runs like any other."""
    model = Model.objects.select_for_update().get(pk=model.pk)
    if not model.is_active:
        raise Conflict(
            f"Model {model.name!r} is deactivated; activate it to test it.",
            param="model",
            code="model_inactive",
        )
    if model.tests.filter(status=ModelTest.Status.QUEUED).exists():
        raise Conflict(
            f"Model {model.name!r} is being tested already.", param="model", code="test_running"
        )
    chosen = _check_prompts(prompts)
    try:
        tokens = int(max_tokens)
    except (TypeError, ValueError):
        raise Invalid("max_tokens must be a whole number.", param="max_tokens") from None
    if not 1 <= tokens <= 4096:
        raise Invalid("max_tokens must be between 1 and 4096.", param="max_tokens")
    test = ModelTest.objects.create(model=model, prompts=chosen, created_by=created_by)
    content, endpoint = _lines(model, chosen, tokens)
    owner = ApiKey.console_key()
    filename = f"model-test-{test.pk}.jsonl"
    stored = job_files.create_file(
        owner,
        ContentFile(content, name=filename),
        purpose="batch",
        filename=filename,
        line_count=len(chosen),
    )
    batch = job_batches.create_batch(
        owner,
        input_file_id=stored.id,
        endpoint=endpoint,
        completion_window=settings.BATCH_COMPLETION_WINDOWS[-1],
        metadata={"kind": "model_test", "model_test": str(test.pk), "model": model.name[:512]},
        priority=TEST_PRIORITY,
    )
    test.batch_id = batch.id
    test.save(update_fields=["batch_id"])
    return test


def get_test(test_id: Any) -> ModelTest:
    try:
        return ModelTest.objects.select_related("model").get(pk=int(test_id))
    except (ModelTest.DoesNotExist, TypeError, ValueError):
        raise NotFound("model test", str(test_id), param="test_id") from None


def enqueue_finish(batch_id: str) -> None:
    """A batch ended: if it is a test's, record the outcome in a task (never inline)."""
    test_id = ModelTest.objects.filter(batch_id=batch_id).values_list("pk", flat=True).first()
    if test_id is not None:
        async_task("models_registry.tasks.finish_model_test", test_id)


def _row_error(row: ResultRow) -> str:
    if row.error:
        return str(row.error.get("message") or row.error)
    try:
        body = json.loads(row.response_body) if row.response_body else {}
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code"))
    return f"request {row.custom_id} ended {row.status}"


def _answer(row: ResultRow, prompt: str) -> dict[str, Any]:
    ok = row.status == "completed" and row.response_status == 200
    text = answer_text(row.response_body) if ok else None
    if ok and text is None:  # an embedding: say how many dimensions came back
        data = json.loads(row.response_body).get("data") or [{}]
        text = f"embedding of {len(data[0].get('embedding') or [])} dimensions"
    return {
        "prompt": prompt,
        "answer": text,
        "error": None if ok else _row_error(row),
        "output_tokens": row.output_tokens,
        "latency_ms": row.latency_ms,
    }


def _figures(test: ModelTest, batch: Any) -> dict[str, Any]:
    prompts = {f"t{i}": p for i, p in enumerate(test.prompts)}
    answers = [_answer(r, prompts.get(r.custom_id, "")) for r in iter_results(batch.id)]
    done = [a for a in answers if a["error"] is None]
    tokens = sum(a["output_tokens"] for a in done)
    longest = max((a["latency_ms"] or 0 for a in done), default=0)
    errors = [a["error"] for a in answers if a["error"]]
    if batch.status != "completed" and not errors:
        first = (batch.errors or [{}])[0]
        errors.append(str(first.get("message") or batch.note or f"the batch {batch.status}"))
    if not answers and not errors:
        errors.append("the test batch produced no answer")
    if any(a["error"] is None and not a["answer"] for a in answers) and not errors:
        errors.append("the model answered with empty text")
    model = test.model
    loaded_for_test = bool(model.last_loaded_at and model.last_loaded_at >= test.created_at)
    return {
        "answers": answers,
        "error": errors[0] if errors else "",
        "output_tokens": tokens,
        "output_tokens_per_second": round(tokens / (longest / 1000), 1) if longest else None,
        "load_seconds": model.last_load_seconds,
        "peak_memory_bytes": model.last_peak_memory_bytes,
        "ready_memory_bytes": model.last_load_memory_bytes,
        "loaded_for_test": loaded_for_test,
    }


def finish_test(test_id: int) -> ModelTest | None:
    """Record a test whose batch ended, and mark its model passed or failed (once)."""
    test = ModelTest.objects.select_related("model").filter(pk=test_id).first()
    if test is None or test.status != ModelTest.Status.QUEUED or not test.batch_id:
        return test
    try:
        batch = get_batch(test.batch_id)
    except NotFound:
        batch = None
    if batch is not None and batch.status not in TERMINAL:
        return test
    if batch is None:
        figures: dict[str, Any] = {"error": "the test batch was deleted"}
    else:
        figures = _figures(test, batch)
    status = ModelTest.Status.FAILED if figures["error"] else ModelTest.Status.PASSED
    with transaction.atomic():
        if test.finish(status, **figures):
            Model.objects.filter(pk=test.model_id).update(test_status=status)
    return test


def finish_ended_tests() -> int:
    """Safety net for a lost signal: finish every queued test whose batch has ended."""
    ids = list(
        ModelTest.objects.filter(status=ModelTest.Status.QUEUED).values_list("pk", flat=True)
    )
    for test_id in ids:
        finish_test(test_id)
    return len(ids)
