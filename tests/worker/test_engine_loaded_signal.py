"""Apps learn how long a model took to load and how much memory its engine holds."""

from __future__ import annotations

from jobs.worker import signals
from jobs.worker.engine.base import ModelSpec
from jobs.worker.engine.manager import EngineManager


def test_a_hosted_load_reports_its_time_and_the_engine_groups_memory():
    seen = []

    def receiver(sender, **kwargs):
        seen.append(kwargs)

    signals.engine_loaded.connect(receiver)
    manager = EngineManager("fake-hosted")
    try:
        manager.ensure_loaded(ModelSpec(name="m"))
        manager.ensure_loaded(ModelSpec(name="m"))  # already loaded: no second report
    finally:
        manager.shutdown()
        signals.engine_loaded.disconnect(receiver)
    assert len(seen) == 1
    assert seen[0]["model"] == "m" and seen[0]["seconds"] > 0
    assert seen[0]["memory_bytes"] > 10 * 2**20  # a Python process at the least
    assert ":" in seen[0]["worker_id"]
