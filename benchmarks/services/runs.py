"""Benchmark runs: planned as batches, started one after another, ended when they all ended.

A run's batches are ordinary batches owned by the console key (``ApiKey.console_key()``) and
tagged ``{"kind": "benchmark", "benchmark_run": …}`` in their metadata: the same services,
queue, scheduler and worker as any client's, so the figures are what a client gets. They run
one at a time (model by model, repetitions of a model back to back), so each batch's wall time
is its own and a model swap happens once per model. ``advance_run`` moves a run on; it is
called when one of its batches ends (``jobs.signals.batch_status_changed``) and every minute by
a schedule, takes the run's row lock, and does nothing when nothing has changed.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from django_q.tasks import async_task

from batchserver import live
from batchserver.errors import Conflict, Invalid, NotFound
from batchserver.models import ApiKey
from benchmarks import scorers as scoring
from benchmarks.models import Dataset, ModelResult, Run, RunBatch
from benchmarks.services import prices
from benchmarks.services.results import compute_result
from jobs.services import batches as job_batches
from jobs.services import files as job_files
from jobs.services.results import get_batch
from models_registry.services import find_active_model

ENDPOINT = "/v1/chat/completions"
TERMINAL = {"completed", "failed", "expired", "cancelled"}
MAX_MODELS = 8
MAX_REPETITIONS = 10


def enqueue_advance(run_id: int) -> None:
    """Ask the worker to move the run on, once the current transaction has committed."""
    transaction.on_commit(lambda: async_task("benchmarks.tasks.advance_run", run_id))


def _check_models(names: list[str]) -> list[str]:
    if isinstance(names, str):
        names = [names]
    names = [str(n).strip() for n in names or [] if str(n).strip()]
    if not names:
        raise Invalid("Name at least one model to benchmark.", param="models", code="no_model")
    if len(set(names)) != len(names):
        raise Invalid("A model is named twice.", param="models", code="duplicate_model")
    if len(names) > MAX_MODELS:
        raise Invalid(f"At most {MAX_MODELS} models per run.", param="models")
    for name in names:
        model = find_active_model(name)
        if model is None:
            raise Invalid(
                f"Unknown model '{name}': it is not an active model of the registry.",
                param="models",
                code="model_not_found",
            )
        if ENDPOINT not in model.endpoints:
            raise Invalid(f"Model '{name}' does not answer chat requests.", param="models")
    return names


def _number(value: Any, param: str, low: float, high: float, kind: type = float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise Invalid(f"{param} must be a number, not {value!r}.", param=param) from None
    if not low <= number <= high:
        raise Invalid(f"{param} must be between {low} and {high}.", param=param)
    return number


def sampling_settings(
    temperature: Any = 0.0, max_tokens: Any = 64, top_p: Any = None, seed: Any = None
) -> dict[str, Any]:
    """The sampling parameters every request of the run carries, checked."""
    sampling = {
        "temperature": _number(temperature, "temperature", 0, 2),
        "max_tokens": _number(max_tokens, "max_tokens", 1, 32768, int),
    }
    if top_p not in (None, ""):
        sampling["top_p"] = _number(top_p, "top_p", 0.000001, 1)
    if seed not in (None, ""):
        sampling["seed"] = _number(seed, "seed", 0, 2**31 - 1, int)
    return sampling


@transaction.atomic
def start_run(
    dataset: Dataset,
    models: list[str],
    *,
    temperature: Any = 0.0,
    max_tokens: Any = 64,
    top_p: Any = None,
    seed: Any = None,
    repetitions: Any = 1,
    scorers: list[str] | None = None,
    regex: str = "",
    gpu_kind: str | None = None,
    cloud_price: Any = None,
    name: str = "",
    created_by: str = "",
) -> Run:
    """Plan a run (one batch per model and repetition) and start its first batch on commit."""
    names = _check_models(models)
    if dataset.item_count == 0:
        raise Invalid(f"Dataset '{dataset.name}' has no prompt.", param="dataset", code="empty")
    repetitions = _number(repetitions, "repetitions", 1, MAX_REPETITIONS, int)
    chosen = list(scorers) if scorers else list(scoring.DEFAULT_SCORERS)
    scoring.get_scorers(chosen)
    if regex:
        scoring.check_regex(regex)
    kind = prices.check_gpu_kind(prices.default_gpu_kind() if gpu_kind is None else gpu_kind)
    run = Run.objects.create(
        name=(name or "").strip()[:200],
        dataset=dataset,
        model_names=names,
        sampling=sampling_settings(temperature, max_tokens, top_p, seed),
        repetitions=repetitions,
        scorers=chosen,
        scorer_options={"regex": regex} if regex else {},
        gpu_kind=kind,
        cloud_price=prices.get_cloud_price(cloud_price),
        created_by=created_by,
    )
    _plan(run, names, repetitions)
    enqueue_advance(run.pk)
    return run


def _plan(run: Run, names: list[str], repetitions: int) -> None:
    """One batch per model and repetition, model by model; one result row per model."""
    plan = [(m, r) for m in names for r in range(1, repetitions + 1)]
    RunBatch.objects.bulk_create(
        RunBatch(run=run, position=i, model=m, repetition=r) for i, (m, r) in enumerate(plan)
    )
    ModelResult.objects.bulk_create(
        ModelResult(run=run, position=i, model=m) for i, m in enumerate(names)
    )


def get_run(run_id: Any) -> Run:
    try:
        return Run.objects.select_related("dataset", "cloud_price").get(pk=int(run_id))
    except (Run.DoesNotExist, TypeError, ValueError):
        raise NotFound("benchmark run", str(run_id), param="run_id") from None


def run_batch_ids(run_id: Any) -> list[str]:
    """The ids of the batches a run started, in order (curation makes datasets of them)."""
    run = get_run(run_id)
    return list(
        run.batches.exclude(batch_id="").order_by("position").values_list("batch_id", flat=True)
    )


@transaction.atomic
def cancel_run(run: Run) -> Run:
    """Stop a run: its running batch is cancelled (finished answers kept), the rest never start."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    if not run.is_active or run.status == Run.Status.CANCELLING:
        raise Conflict(
            f"Cannot cancel a benchmark run with status '{run.status}'.",
            param="run_id",
            code="run_not_cancellable",
        )
    run.transition(Run.Status.CANCELLING)
    for slot in run.batches.exclude(batch_id="").filter(batch_status=""):
        batch = get_batch(slot.batch_id)
        if batch.status in ("validating", "in_progress"):
            job_batches.request_cancel(batch)
    enqueue_advance(run.pk)
    return run


def batch_lines(run: Run, model: str) -> tuple[bytes, int]:
    """The batch input of one model: one chat request per prompt, ``custom_id`` its index."""
    lines = []
    for index, messages in run.dataset.items.order_by("index").values_list("index", "messages"):
        body = {"model": model, "messages": messages, **run.sampling}
        line = {"custom_id": f"p{index}", "method": "POST", "url": ENDPOINT, "body": body}
        lines.append(json.dumps(line, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode(), len(lines)


def _start_batch(run: Run, slot: RunBatch) -> None:
    content, count = batch_lines(run, slot.model)
    owner = ApiKey.console_key()
    filename = f"benchmark-run-{run.pk}-{slot.position}.jsonl"
    stored = job_files.create_file(
        owner,
        ContentFile(content, name=filename),
        purpose="batch",
        filename=filename,
        line_count=count,
    )
    batch = job_batches.create_batch(
        owner,
        input_file_id=stored.id,
        endpoint=ENDPOINT,
        completion_window=live.get("BATCH_COMPLETION_WINDOWS")[-1],
        metadata={
            "kind": "benchmark",
            "benchmark_run": str(run.pk),
            "benchmark_model": slot.model[:512],
            "benchmark_repetition": str(slot.repetition),
        },
    )
    slot.batch_id = batch.id
    slot.save(update_fields=["batch_id"])


def _settle_started(run: Run) -> bool:
    """Record the end of started batches; False while one still runs."""
    for slot in run.batches.exclude(batch_id="").filter(batch_status=""):
        try:
            status = get_batch(slot.batch_id).status
        except NotFound:  # deleted under the run (admin): nothing more will come of it
            status = "failed"
        if status not in TERMINAL:
            return False
        slot.batch_status = status
        slot.save(update_fields=["batch_status"])
        if status == "failed":  # the model cannot run: its other repetitions would fail alike
            run.batches.filter(model=slot.model, batch_id="").update(skipped=True)
    return True


def _finish_models(run: Run) -> None:
    """Compute the results of every model whose batches have all ended."""
    pending = {s.model for s in run.batches.all() if not s.ended}
    for result in run.results.filter(computed_at__isnull=True):
        if result.model not in pending:
            compute_result(result)


def advance_run(run_id: int) -> Run | None:
    """Move a run on: note ended batches, compute finished models, start the next batch, end."""
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or not run.is_active:
            return run
        if not _settle_started(run):
            return run
        if run.status == Run.Status.CANCELLING:
            run.batches.filter(batch_id="").update(skipped=True)
        following = run.batches.filter(batch_id="", skipped=False).order_by("position").first()
        _finish_models(run)
        if following is not None:
            run.transition(Run.Status.RUNNING)
            _start_batch(run, following)
            return run
        if run.status == Run.Status.CANCELLING:
            run.transition(Run.Status.CANCELLED)
        elif run.results.filter(completed__gt=0).exists():
            run.transition(Run.Status.COMPLETED)
        else:
            run.transition(Run.Status.FAILED)
    return run
