"""Warm start: a worker prepares its engine before work arrives.

When django-q2 spawns a worker process (its ``post_spawn`` signal), a thread of that process
starts the engine host and loads a model, so the first batch does not pay the engine's start
(a new interpreter, vLLM and torch imported twice, the model and its KV cache: 20-45 s on a
CPU). Which model: every registered kind may name one (``WorkKind.warm_model``); batch chunks
name the model of the work waiting first, else the one this host served last, else the
default (``WORKER_WARM_MODEL``); then, if work is waiting and no task is, it asks for one.
The engine's lock makes the first task wait for this load
instead of starting a second engine; a task that needs another model swaps as usual.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import connection

from jobs.worker import kinds, loop
from jobs.worker.engine.base import ModelSpec
from jobs.worker.engine.manager import get_engine
from jobs.worker.heartbeat import get_heartbeat

logger = logging.getLogger(__name__)


def enabled() -> bool:
    """Off with ``WORKER_WARM_MODEL=off`` and for inline tasks (unit tests, no worker process)."""
    return settings.WORKER_WARM_MODEL.lower() != "off" and not settings.Q_CLUSTER.get("sync")


def warm_start(**_: object) -> threading.Thread | None:
    """``post_spawn`` receiver: load the engine in the background; returns the thread."""
    if not enabled():
        return None
    # Made here, in the process's main thread, so the task thread finds the same ones.
    heartbeat, engine = get_heartbeat(), get_engine()

    def load() -> None:
        try:
            spec = choose_model(heartbeat.worker_id)
            if spec is None:
                logger.info("warm start: no model to load yet")
            else:
                heartbeat.loading(spec.name)
                logger.info("warm start: loading %s before work arrives", spec.name)
                engine.ensure_loaded(spec)
            # A worker (re)started while work waits asks for a task, rather than waiting for
            # another worker's fan-out or the minute's tick (e.g. after a crash of its own).
            loop.fan_out()
        except Exception as exc:  # the first unit that needs a model loads (and reports) it
            logger.warning("warm start failed: %s", exc)
        finally:
            heartbeat.loaded(engine.loaded_model)
            connection.close()  # this thread's own database connection

    thread = threading.Thread(target=load, name="engine-warm", daemon=True)
    thread.start()
    return thread


def choose_model(worker_id: str) -> ModelSpec | None:
    """The first model a registered kind names for this worker (None: load nothing).

    Nothing while exclusive work (training) waits: it would stop the engine at once.
    """
    if any(kind.exclusive and kind.has_work() for kind in kinds.registered()):
        return None
    for kind in kinds.registered():
        spec = kind.warm_model(worker_id)
        if spec is not None:
            return spec
    return None
