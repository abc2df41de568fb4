"""How a long curation operation tells how far it is: a callback ``progress(done, total)``.

The management commands pass a progress bar; a task started from a page passes
``DatasetProgress``, which writes the figures on the dataset (the page polls them and shows an
ETA) at most twice a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from curation.models import Dataset

Progress = Callable[[int, int], None]  # (done so far, to do in all)
T = TypeVar("T")

REPORT_SECONDS = 0.5
EVERY = 500  # items between two calls of the callback while counting


def counted(items: Iterable[T], total: int, progress: Progress | None) -> Iterator[T]:
    """``items`` as they are, telling ``progress`` every 500 items and at the end."""
    if progress is None:
        yield from items
        return
    done = 0
    progress(0, total)
    for item in items:
        yield item
        done += 1
        if done % EVERY == 0:
            progress(done, total)
    progress(done, max(total, done))


class DatasetProgress:
    """Writes an operation's progress on its dataset, at most every ``REPORT_SECONDS`` (and
    always the last figure), each write committed on its own so the page sees it."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < REPORT_SECONDS:
            return
        self.last = now
        self.dataset.report_task(done, total)
