"""Riding out a lost database connection in the worker: retry a step with back-off.

A PostgreSQL restart or a network blip must cost the worker a few seconds, not a chunk's work or
the task. ``db_retry`` wraps one database step (claim, read, write a chunk's results); stale
connections are closed between attempts so the next one reconnects. It knows nothing of the
domain: a caller that wants to record what happened passes ``on_recovered``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import tenacity
from django.db import InterfaceError, OperationalError, close_old_connections, connection

logger = logging.getLogger(__name__)

# 8 attempts, waits 0.5 s doubling to at most 10 s, plus up to 1 s of jitter so that workers
# that lost the database together do not return in lockstep: about 40 s in all, longer than a
# PostgreSQL restart and shorter than the default 60 s lease.
DB_ERRORS = (OperationalError, InterfaceError)
DB_RETRY_ATTEMPTS = 8
DB_RETRY_FIRST_WAIT = 0.5
DB_RETRY_MAX_WAIT = 10.0
DB_RETRY_JITTER = 1.0

T = TypeVar("T")
# on_recovered(args, result, text): the step succeeded after failures; ``text`` says what
# happened (when, how many retries, the first error), for a note on whatever the step concerned.
Recovered = Callable[[tuple[Any, ...], Any, str], None]


def _describe(what: str, failures: list[str], seconds: float) -> str:
    from django.utils import timezone

    retries = f"{len(failures)} retr{'y' if len(failures) == 1 else 'ies'}"
    return (
        f"{timezone.now():%Y-%m-%d %H:%M:%S} UTC: the database connection was lost while "
        f"{what}; recovered after {retries} in {seconds:.1f}s (first error: {failures[0]})"
    )


def db_retry(
    what: str, on_recovered: Recovered | None = None
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Retry a database step through a lost connection (tenacity, bounded, logged).

    Inside an atomic block nothing is retried: the transaction is lost with the connection, and
    only whoever opened it can start it again.
    """

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            if connection.in_atomic_block:
                return fn(*args, **kwargs)
            failures: list[str] = []
            started = time.monotonic()

            def before_sleep(state: tenacity.RetryCallState) -> None:
                exc = state.outcome.exception() if state.outcome else None
                failures.append(str(exc).strip().splitlines()[0] if exc else "?")
                wait = state.next_action.sleep if state.next_action else 0.0
                logger.warning(
                    "database unavailable while %s (attempt %d of %d): %s; retrying in %.1fs",
                    what,
                    state.attempt_number,
                    DB_RETRY_ATTEMPTS,
                    failures[-1],
                    wait,
                )
                close_old_connections()

            retrying = tenacity.Retrying(
                retry=tenacity.retry_if_exception_type(DB_ERRORS),
                wait=tenacity.wait_exponential(
                    multiplier=DB_RETRY_FIRST_WAIT, max=DB_RETRY_MAX_WAIT
                )
                + tenacity.wait_random(0, DB_RETRY_JITTER),
                stop=tenacity.stop_after_attempt(DB_RETRY_ATTEMPTS),
                before_sleep=before_sleep,
                reraise=True,
            )
            try:
                result = retrying(fn, *args, **kwargs)
            except DB_ERRORS:
                logger.error(
                    "database unavailable while %s: gave up after %d attempts",
                    what,
                    DB_RETRY_ATTEMPTS,
                )
                raise
            if failures and on_recovered is not None:
                text = _describe(what, failures, time.monotonic() - started)
                try:
                    on_recovered(args, result, text)
                except DB_ERRORS as exc:
                    logger.warning("could not record the recovery (%s): %s", what, exc)
            return result

        return wrapper

    return decorate
