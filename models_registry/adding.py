"""Adding a model: a local folder at once; a GGUF file or a hub id through an import with progress.

Every path ends in the same checks (``inspection.check_folder``: config, tokenizer, weights,
architecture known to vLLM) *before* a registry row exists, so a bad model gets a message and
no row. A folder is checked in the request and registered in place. A GGUF file (converted
into ``MODELS_DIR/<name>``) and a hub repo (downloaded into ``MODELS_DIR/hub/<org>--<repo>``,
resumable) take long: the request checks what it can cheaply, records a ``ModelImport`` and
enqueues ``run_import`` on commit; the import creates the model when its files pass.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django_q.tasks import async_task

from batchserver.errors import Conflict, DomainError, Invalid, NotFound
from models_registry import sources
from models_registry.conversion import ConversionError, convert_gguf
from models_registry.inspection import check_folder, check_gguf_file
from models_registry.models import Model, ModelImport
from models_registry.services import ENGINE_SETTINGS, check_new_name

S = ModelImport.Status
DTYPES = ("auto", "float32", "float16", "bfloat16", "half", "float")
PROGRESS_INTERVAL = 1.0  # seconds between two progress writes of a download


def _clean_options(options: dict[str, Any]) -> dict[str, Any]:
    """Kind, owner, description and engine settings, checked the way the model's fields are."""
    allowed = {"kind", "owned_by", "description", *ENGINE_SETTINGS}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise Invalid(f"Unknown setting: {', '.join(unknown)}.", param=unknown[0])
    chosen = {k: v for k, v in options.items() if v not in (None, "")}
    if "dtype" in chosen and chosen["dtype"] not in DTYPES:
        raise Invalid(f"dtype must be one of {', '.join(DTYPES)}.", param="dtype")
    probe = Model(name="probe", **chosen)
    try:
        probe.full_clean(exclude=["name", "path"], validate_unique=False)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise Invalid(f"{field}: {' '.join(messages)}", param=field) from None
    return chosen


def _check_name_free(name: str) -> str:
    name = check_new_name(name)
    busy = ModelImport.objects.filter(name=name).exclude(status__in=ModelImport.ENDED)
    if busy.exists():
        raise Conflict(
            f"Model {name!r} is being imported already.", param="name", code="import_running"
        )
    return name


def folder_for(name: str) -> Path:
    """Where a converted or downloaded model lives in the data folder."""
    return Path(django_settings.MODELS_DIR) / re.sub(r"[^\w.-]+", "--", name).strip(".-")


def hub_folder(repo_id: str) -> Path:
    return Path(django_settings.MODELS_DIR) / "hub" / repo_id.replace("/", "--")


@transaction.atomic
def add_model(
    *, source_kind: str, source: str, name: str = "", created_by: str = "", **options: Any
) -> Model | ModelImport:
    """Add a model from a folder (returns the model) or start an import (returns the import)."""
    source = (source or "").strip()
    if not source:
        raise Invalid("Say where the model is (a folder, a GGUF file or a hub id).", param="source")
    if source_kind not in ModelImport.Source.values:
        raise Invalid(
            f"source_kind must be one of {', '.join(ModelImport.Source.values)}.",
            param="source_kind",
        )
    if source_kind == ModelImport.Source.HUB and not sources.check_repo_id(source):
        raise Invalid(
            f"{source!r} is not a hub repo id like 'org/name'.", param="source", code="bad_repo_id"
        )
    name = _check_name_free(name or source)
    chosen = _clean_options(options)
    if source_kind == ModelImport.Source.FOLDER:
        report = check_folder(source)
        origin = Model.Origin.ADDED
        return _create_model(name, report.path, source, origin, report.kind, chosen)
    if source_kind == ModelImport.Source.GGUF:
        check_gguf_file(source)
    job = ModelImport.objects.create(
        name=name, source_kind=source_kind, source=source, options=chosen, created_by=created_by
    )
    _enqueue(job)
    return job


def _enqueue(job: ModelImport) -> None:
    job_id = job.pk
    transaction.on_commit(lambda: async_task("models_registry.tasks.run_import", job_id))


def _create_model(
    name: str, path: str, source: str, origin: str, kind: str, chosen: dict[str, Any]
) -> Model:
    fields = {"kind": kind, **chosen}
    return Model.objects.create(name=name, path=path, source=source, origin=origin, **fields)


def get_import(import_id: Any) -> ModelImport:
    try:
        return ModelImport.objects.select_related("model").get(pk=int(import_id))
    except (ModelImport.DoesNotExist, TypeError, ValueError):
        raise NotFound("model import", str(import_id), param="import_id") from None


def retry_import(job: ModelImport) -> ModelImport:
    """Start a failed import again; a download resumes from the files already there."""
    if not job.transition(S.QUEUED, error="", finished_at=None):
        raise Conflict(
            f"Only a failed import can be retried; this one is {job.status}.",
            param="import_id",
            code="import_not_failed",
        )
    _enqueue(job)
    return job


def _reporter(job: ModelImport):
    """A throttled progress callback; download threads close the connection they opened."""
    last = [0.0]
    main = threading.get_ident()

    def report(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_INTERVAL and not (total and done >= total):
            return
        last[0] = now
        job.report_progress(done, total)
        if threading.get_ident() != main:
            connection.close()

    return report


def _fetch(job: ModelImport) -> Path:
    if job.source_kind == ModelImport.Source.GGUF:
        job.transition(S.CONVERTING)
        gguf = check_gguf_file(job.source)
        return convert_gguf(gguf, folder_for(job.name))
    job.transition(S.DOWNLOADING)
    dest = hub_folder(job.source)
    dest.mkdir(parents=True, exist_ok=True)
    endpoint = django_settings.MODELS_HUB_ENDPOINT or None
    return sources.download_snapshot(job.source, dest, _reporter(job), endpoint=endpoint)


def run_import(import_id: int) -> ModelImport | None:
    """Fetch, convert, check, then register; a failure leaves its reason on the import only."""
    job = ModelImport.objects.filter(pk=import_id).first()
    if job is None or job.status != S.QUEUED:
        return job  # gone, or another delivery of this task is on it
    try:
        folder = _fetch(job)
        job.transition(S.CHECKING)
        report = check_folder(folder)
        with transaction.atomic():
            name = check_new_name(job.name)
            origin = (
                Model.Origin.CONVERTED
                if job.source_kind == ModelImport.Source.GGUF
                else Model.Origin.ADDED
            )
            options = dict(job.options)
            kind = options.pop("kind", None) or report.kind
            model = _create_model(name, report.path, job.source, origin, kind, options)
            job.transition(S.SUCCEEDED, model=model)
    except DomainError as exc:
        job.transition(S.FAILED, error=f"{job.name}: {exc.message}")
    except (ConversionError, sources.SourceError, OSError) as exc:
        job.transition(S.FAILED, error=f"{job.name}: {exc}")
    return job
