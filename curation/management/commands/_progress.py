"""The progress bar the curation commands share: a tqdm bar fed by a service's
``progress(done, total)`` callback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

from curation.services.progress import Progress


@contextmanager
def progress_bar(description: str, unit: str) -> Iterator[Progress]:
    """A bar on stderr (rate and time left included) for the ``with`` block's operation."""
    with tqdm(total=0, desc=description, unit=unit, dynamic_ncols=True) as bar:

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        yield update
