"""Operator requests to a worker that take effect between units: restart the engine.

The request lives in the shared database cache, so the web process can set it and the worker
process sees it before its next unit of work.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.core.cache import cache
from django.utils import timezone

from jobs.worker.models import Worker

logger = logging.getLogger(__name__)
RESTART_KEY = "worker-restart:{}"
RESTART_TTL_SECONDS = 24 * 3600


def request_worker_restart(worker_ids: list[str] | None = None) -> list[str]:
    """Ask workers (every live one by default) to restart their engine between units."""
    if not worker_ids:
        worker_ids = list(Worker.objects.alive().values_list("worker_id", flat=True))
    now = timezone.now().timestamp()
    cache.set_many({RESTART_KEY.format(w): now for w in worker_ids}, RESTART_TTL_SECONDS)
    logger.info("engine restart requested for %s", ", ".join(worker_ids) or "no worker")
    return worker_ids


def take_restart_request(worker_id: str) -> bool:
    """True (once) if a restart was requested for ``worker_id``; the request is consumed."""
    key = RESTART_KEY.format(worker_id)
    if cache.get(key) is None:
        return False
    cache.delete(key)
    return True


def restart_requests(worker_ids: list[str]) -> dict[str, datetime]:
    """When a still pending restart was requested, by worker id."""
    found = cache.get_many([RESTART_KEY.format(w) for w in worker_ids])
    prefix = len(RESTART_KEY.format(""))
    return {
        key[prefix:]: datetime.fromtimestamp(value, tz=timezone.get_current_timezone())
        for key, value in found.items()
    }
