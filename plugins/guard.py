"""Every hook call goes through here: guarded, timed, counted, and stopped when it overruns.

A call that raises, or that runs past its plugin's time budget, is logged (with the
correlation id of the batch or request being served), counted in Prometheus and in the
database, and turned into ``PluginFailed`` for the caller to handle (one error line, a missing
score; never a lost batch). After ``PLUGINS_MAX_CONSECUTIVE_FAILURES`` failures in a row in
one process the plugin is switched off: at once in that process, and for every process through
the database, with the reason shown on the /plugins page and in the API.

The time budget is enforced with ``SIGALRM`` when the call runs on the process's main thread
(gunicorn's sync workers, the qcluster worker, management commands): the alarm interrupts even
a plugin stuck in ``time.sleep``. django-q2's own task timeout alarm is saved and restored
around the call. Elsewhere (threaded servers) the call is measured and a result that came too
late is discarded as a timeout, but a call that never returns cannot be interrupted.
"""

from __future__ import annotations

import _signal  # the C functions under ``signal``: no enum conversion on every call
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from batchserver import correlation
from batchserver.errors import DomainError
from plugins import metrics
from plugins.models import Generation, PluginState
from plugins.types import LineRejected, PluginTimeout

logger = logging.getLogger(__name__)
FLUSH_EVERY_SECONDS = 1.0


class PluginFailed(Exception):
    """A hook call raised or overran; ``kind`` is ``error`` or ``timeout``."""

    def __init__(self, plugin_id: str, hook: str, kind: str, message: str) -> None:
        super().__init__(f"plugin {plugin_id} failed in {hook}: {message}")
        self.plugin_id, self.hook, self.kind, self.message = plugin_id, hook, kind, message

    @property
    def code(self) -> str:
        return "plugin_timeout" if self.kind == "timeout" else "plugin_error"


class _OuterAlarm(BaseException):
    """An alarm set outside the plugin call (django-q2's task timeout) went off during it."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


# Per process: plugins switched off here (a plan made before that skips them), failures in a
# row per plugin, and failures not yet written to the database.
switched_off: set[str] = set()
_consecutive: dict[str, int] = {}
_pending: dict[str, list[Any]] = {}  # plugin id -> [count, last message]
_last_flush = 0.0
# Set by plugins.runtime: stop calling a plugin in this process's loaded runtime at once.
on_switch_off: Callable[[str, str], None] | None = None
_children: dict[tuple[str, str], tuple[Any, Any]] = {}


def _series(plugin_id: str, hook: str) -> tuple[Any, Any]:
    pair = _children.get((plugin_id, hook))
    if pair is None:
        pair = (metrics.CALLS.labels(plugin_id, hook), metrics.SECONDS.labels(plugin_id, hook))
        _children[(plugin_id, hook)] = pair
    return pair


def call(plugin: Any, impl: Any, hook: str, kwargs: dict[str, Any]) -> Any:
    """Call one plugin's implementation of ``hook`` with the arguments it asks for.

    Returns its result; raises ``LineRejected`` (the plugin's verdict on a line) and domain
    errors (``Invalid``, ``NotFound`` … : the caller asked for something wrong) as they are,
    and ``PluginFailed`` for anything else it raised or for running out of time.
    """
    args = {name: plugin.settings if name == "settings" else kwargs[name] for name in impl.argnames}
    return invoke(plugin, hook, impl.function, args, plugin.budget(hook))


def invoke(
    plugin: Any, hook: str, function: Callable[..., Any], args: dict[str, Any], budget: float
) -> Any:
    """Call ``function(**args)`` of ``plugin`` under the guard (``budget`` 0: no time limit)."""
    calls, seconds = _series(plugin.id, hook)
    calls.inc()
    started = time.perf_counter()
    try:
        result = _run(function, args, budget)
    except _OuterAlarm as outer:  # the task's own timeout: not the plugin's failure
        raise outer.original from None
    except (LineRejected, DomainError):  # the plugin's own verdict, not a failure
        seconds.observe(time.perf_counter() - started)
        _succeeded(plugin.id)
        raise
    except PluginTimeout:
        raise _failed(
            plugin, hook, "timeout", f"exceeded its time budget of {budget:g} s"
        ) from None
    except Exception as exc:  # noqa: BLE001 - whatever a plugin raises is its failure, not ours
        raise _failed(plugin, hook, "error", f"{type(exc).__name__}: {exc}") from exc
    elapsed = time.perf_counter() - started
    seconds.observe(elapsed)
    if budget > 0 and elapsed > budget:  # no alarm off the main thread: late is still a timeout
        raise _failed(plugin, hook, "timeout", f"took {elapsed:.2f} s, budget {budget:g} s")
    _succeeded(plugin.id)
    return result


_MAIN_THREAD = threading.main_thread().ident
_ALARM, _REAL = int(signal.SIGALRM), int(signal.ITIMER_REAL)


def _run(function: Callable[..., Any], args: dict[str, Any], budget: float) -> Any:
    if budget <= 0 or threading.get_ident() != _MAIN_THREAD:
        return function(**args)
    started = time.monotonic()
    old_delay, old_interval = _signal.getitimer(_REAL)
    outer_first = 0 < old_delay <= budget  # an outer alarm (django-q2's task timeout) is due first

    outer_fired: list[bool] = []

    def on_alarm(signum: int, frame: Any) -> None:
        if outer_first and callable(old_handler):
            outer_fired.append(True)
            try:
                old_handler(signum, frame)
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller as it is
                raise _OuterAlarm(exc) from exc
        raise PluginTimeout

    old_handler = _signal.signal(_ALARM, on_alarm)
    _signal.setitimer(_REAL, old_delay if outer_first else budget)
    try:
        return function(**args)
    finally:
        _signal.setitimer(_REAL, 0)
        _signal.signal(_ALARM, old_handler)
        if old_delay > 0 and not outer_fired:
            left = old_delay - (time.monotonic() - started)
            _signal.setitimer(_REAL, max(left, 0.001), old_interval)


def _succeeded(plugin_id: str) -> None:
    if _consecutive.get(plugin_id):
        _consecutive[plugin_id] = 0


def _failed(plugin: Any, hook: str, kind: str, message: str) -> PluginFailed:
    metrics.FAILURES.labels(plugin.id, hook, kind).inc()
    logger.warning(
        "plugin %s failed in %s (%s): %s",
        plugin.id,
        hook,
        kind,
        message,
        extra={"plugin": plugin.id, "hook": hook, "correlation_id": correlation.get() or "-"},
    )
    count = _consecutive.get(plugin.id, 0) + 1
    _consecutive[plugin.id] = count
    pending = _pending.setdefault(plugin.id, [0, ""])
    pending[0] += 1
    pending[1] = f"{hook}: {message}"
    limit = settings.PLUGINS_MAX_CONSECUTIVE_FAILURES
    if limit and count >= limit:
        _auto_disable(
            plugin.id, f"switched off after {count} failures in a row; last: {hook}: {message}"
        )
    elif time.monotonic() - _last_flush >= FLUSH_EVERY_SECONDS:
        flush()
    return PluginFailed(plugin.id, hook, kind, message)


def _auto_disable(plugin_id: str, reason: str) -> None:
    _consecutive[plugin_id] = 0
    switched_off.add(plugin_id)
    metrics.AUTO_DISABLED.labels(plugin_id).inc()
    logger.error(
        "plugin %s disabled: %s",
        plugin_id,
        reason,
        extra={"plugin": plugin_id, "correlation_id": correlation.get() or "-"},
    )
    if on_switch_off is not None:
        on_switch_off(plugin_id, reason)
    pending = _pending.pop(plugin_id, [0, reason])
    _after_commit(lambda: _store_auto_disable(plugin_id, reason, pending[0]))


def _store_auto_disable(plugin_id: str, reason: str, errors: int) -> None:
    now = timezone.now()
    with transaction.atomic():
        PluginState.objects.get_or_create(plugin_id=plugin_id)
        PluginState.objects.filter(pk=plugin_id).update(
            enabled=False,
            auto_disabled_at=now,
            disabled_reason=reason,
            error_count=F("error_count") + errors,
            last_error=reason,
            last_error_at=now,
            updated_at=now,
        )
        Generation.bump()


def flush() -> None:
    """Write the failures counted in this process since the last flush to the database."""
    global _last_flush
    _last_flush = time.monotonic()
    if not _pending:
        return
    pending = dict(_pending)
    _pending.clear()
    _after_commit(lambda: _store_errors(pending))


def _store_errors(pending: dict[str, list[Any]]) -> None:
    now = timezone.now()
    try:
        for plugin_id, (count, message) in pending.items():
            PluginState.objects.filter(pk=plugin_id).update(
                error_count=F("error_count") + count, last_error=message, last_error_at=now
            )
    except DatabaseError as exc:  # counts are best effort; the failures were logged already
        logger.warning("could not record plugin errors: %s", exc)


def _after_commit(write: Callable[[], None]) -> None:
    # Inside a transaction (a batch being validated), write only if it commits: never hold the
    # plugin rows locked for the rest of someone else's transaction.
    transaction.on_commit(write, robust=True)


def forget(plugin_id: str) -> None:
    """Start counting a plugin's failures in a row afresh (an operator enabled it again)."""
    _consecutive.pop(plugin_id, None)
    switched_off.discard(plugin_id)


def reset() -> None:
    """Forget this process's counters (tests)."""
    switched_off.clear()
    _consecutive.clear()
    _pending.clear()
