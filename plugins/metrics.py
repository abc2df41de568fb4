"""Prometheus series of plugin calls.

Counters kept in each process's memory (``plugin_calls_total``, ``plugin_failures_total``,
``plugin_call_seconds``, ``plugin_auto_disabled_total``) count what that process's hook calls
did; the web process serves them on ``/metrics``. A worker's calls are also kept in the
database (``PluginState.error_count``), which ``PluginStateCollector`` reports at scrape time as
``plugin_errors_recorded`` and ``plugin_enabled``, so failures inside the worker are seen too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client import Counter, Histogram
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plugins.models import PluginState

logger = logging.getLogger(__name__)

CALLS = Counter("plugin_calls", "Hook calls made to plugins", ["plugin", "hook"])
FAILURES = Counter(
    "plugin_failures", "Hook calls that raised or ran out of time", ["plugin", "hook", "kind"]
)
SECONDS = Histogram(
    "plugin_call_seconds",
    "Duration of hook calls",
    ["plugin", "hook"],
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10),
)
AUTO_DISABLED = Counter(
    "plugin_auto_disabled", "Plugins switched off after consecutive failures", ["plugin"]
)


class PluginStateCollector(Collector):
    """``plugin_enabled`` and ``plugin_errors_recorded`` from the (small) plugin state table."""

    def describe(self) -> list[Metric]:
        return list(self._families().values())

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        return {
            "enabled": GaugeMetricFamily(
                "plugin_enabled", "1 if the plugin is enabled", labels=["plugin"]
            ),
            "errors": GaugeMetricFamily(
                "plugin_errors_recorded",
                "Failed hook calls recorded by every process",
                labels=["plugin"],
            ),
        }

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        try:
            rows = list(PluginState.objects.values_list("plugin_id", "enabled", "error_count"))
        except DatabaseError as exc:
            logger.warning("plugin metrics unavailable: %s", exc)
            return
        for plugin_id, enabled, errors in rows:
            families["enabled"].add_metric([plugin_id], 1 if enabled else 0)
            families["errors"].add_metric([plugin_id], errors)
        yield from families.values()


_collector: PluginStateCollector | None = None


def register() -> None:
    global _collector
    if _collector is None:
        _collector = PluginStateCollector()
        REGISTRY.register(_collector)
