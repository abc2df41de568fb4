"""django-q2 entry points of the console (dotted paths stored in schedules: they stay put)."""

from __future__ import annotations

from batchserver.operations import samples


def sample_metrics() -> str:
    """Every minute: one sample of the figures the dashboard charts."""
    sample = samples.take_sample()
    return f"sample at {sample.at:%H:%M:%S}"
