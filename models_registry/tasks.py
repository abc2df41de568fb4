"""django-q2 entry points of the registry: they take ids and re-read the rows."""

from __future__ import annotations

from models_registry import adding, model_tests


def run_import(import_id: int) -> str:
    """Fetch, convert and check an imported model, then register it (or record why not)."""
    job = adding.run_import(import_id)
    return f"import {import_id}: {job.status if job else 'gone'}"


def finish_model_test(test_id: int) -> str:
    """Record the outcome of a model test whose batch ended; nothing if it was recorded."""
    test = model_tests.finish_test(test_id)
    return f"model test {test_id}: {test.status if test else 'gone'}"


def finish_ended_tests() -> int:
    """Periodic safety net: record every queued test whose batch has ended meanwhile."""
    return model_tests.finish_ended_tests()
