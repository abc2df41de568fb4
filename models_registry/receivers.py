"""Signal receivers: a model test's batch that ends has its outcome recorded (in a task)."""

from __future__ import annotations

from models_registry import model_tests

ENDED = {"completed", "failed", "expired", "cancelled"}


def on_batch_status_changed(sender, batch_id: str, old: str, new: str, **kwargs) -> None:
    """``jobs.signals.batch_status_changed``: sent after the change committed."""
    if new in ENDED:
        model_tests.enqueue_finish(batch_id)
