"""Reads that answer an operator's or a client's question about models: usage, tests, imports.

Usage of batches is read through ``jobs.services.results.model_usage`` (the registry never
imports the batch models); the measured throughput is the registry's own moving average
(``services.record_throughput``), the figure the queue's time estimates use.
"""

from __future__ import annotations

from typing import Any

from jobs.services.results import model_usage
from models_registry.models import Model, ModelImport, ModelTest

EMPTY_USAGE = {
    "batches": 0,
    "requests": 0,
    "completed": 0,
    "failed": 0,
    "input_tokens": 0,
    "output_tokens": 0,
    "last_used_at": None,
}


def usage(models: list[Model]) -> dict[str, dict[str, Any]]:
    """Per model name: batches, requests, tokens, last used, measured output tokens/s."""
    found = model_usage([m.name for m in models]) if models else {}
    result = {}
    for model in models:
        figures = {**EMPTY_USAGE, **found.get(model.name, {})}
        figures["output_tokens_per_second"] = model.measured_output_tokens_per_second
        result[model.name] = figures
    return result


def usage_fields(model: Model) -> dict[str, Any]:
    """The usage of one model as ``GET /v1/models/{id}`` answers it (extension fields)."""
    figures = usage([model])[model.name]
    last = figures["last_used_at"]
    return {
        "usage": {
            "batches": figures["batches"],
            "requests": figures["requests"],
            "completed_requests": figures["completed"],
            "failed_requests": figures["failed"],
            "input_tokens": figures["input_tokens"],
            "output_tokens": figures["output_tokens"],
            "last_used_at": int(last.timestamp()) if last else None,
            "output_tokens_per_second": figures["output_tokens_per_second"],
        }
    }


def registry_rows(include_inactive: bool = True) -> list[dict[str, Any]]:
    """The management page's table: every model with its lineage, last test and usage."""
    models = list(Model.objects.select_related("parent").order_by("name"))
    if not include_inactive:
        models = [m for m in models if m.is_active]
    latest: dict[int, ModelTest] = {}
    for test in ModelTest.objects.filter(model__in=models).order_by("created_at", "pk"):
        latest[test.model_id] = test
    figures = usage(models)
    return [{"model": m, "test": latest.get(m.pk), "usage": figures[m.name]} for m in models]


def lineage_of(model: Model) -> list[Model]:
    """From the base down to ``model``: the chain of parents."""
    chain = [model]
    while chain[-1].parent_id is not None and chain[-1].parent is not None:
        chain.append(chain[-1].parent)
    return list(reversed(chain))


def recent_imports(limit: int = 10) -> list[ModelImport]:
    return list(ModelImport.objects.select_related("model")[:limit])


def active_imports() -> bool:
    return ModelImport.objects.exclude(status__in=ModelImport.ENDED).exists()
