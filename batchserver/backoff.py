"""Exponential back-off with jitter for work that is retried later by a task, not in a loop.

The delays come from tenacity's own wait strategy, so every retried thing in the project
(webhook deliveries, model loads) backs off the same, well-tested way.
"""

from __future__ import annotations

from tenacity import RetryCallState, wait_exponential_jitter


def backoff_delay(
    attempt: int, *, initial: float, maximum: float, exp_base: float = 2.0, jitter: float = 1.0
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based), jitter included:
    ``min(initial * exp_base ** (attempt - 1) + uniform(0, jitter), maximum)``."""
    wait = wait_exponential_jitter(
        multiplier=initial, max=maximum, exp_base=exp_base, jitter=jitter
    )
    # A wait strategy only reads the attempt number; no Retrying object is involved here.
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return float(wait(state))
