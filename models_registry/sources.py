"""Fetching weights from the Hugging Face hub into the data folder, with progress.

``download_snapshot`` is the one function that talks to the hub (tests replace it: this
machine has no hub access). ``huggingface_hub.snapshot_download`` into ``local_dir`` resumes by
itself: files already complete are skipped and partial ones continue, so importing the same id
again after a failure picks up where it stopped.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

Progress = Callable[[int, int | None], None]

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")


def operator_offline() -> bool:
    """Whether the operator switched the hub off (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


# The operator's choice, read before anything in this process changes it (the app's ready()
# reads it again): converting a GGUF file switches the hub off for transformers
# (``conversion.py``), which must not disable the downloads an operator asks for later.
OPERATOR_OFFLINE = operator_offline()


class SourceError(RuntimeError):
    """The weights could not be fetched; the message names the model and the reason."""


def check_repo_id(repo_id: str) -> bool:
    return bool(REPO_ID.match(repo_id)) and ".." not in repo_id


def _progress_class(report: Progress) -> type[tqdm]:
    """A silent tqdm that passes the byte counts of the snapshot's bars to ``report``."""

    class ReportingBar(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["file"] = io.StringIO()  # no terminal output in a worker
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            if self.unit == "B":
                report(int(self.n), int(self.total) if self.total else None)
            return shown

    return ReportingBar


def download_snapshot(
    repo_id: str, dest: Path, report: Progress, endpoint: str | None = None
) -> Path:
    """Download (or resume) ``repo_id`` into ``dest``; ``SourceError`` naming it on failure."""
    from huggingface_hub import constants, snapshot_download

    if OPERATOR_OFFLINE:
        raise SourceError(
            f"Could not download {repo_id!r}: downloads from the hub are switched off on this "
            "server (HF_HUB_OFFLINE=1)."
        )
    constants.HF_HUB_OFFLINE = False  # see OPERATOR_OFFLINE
    try:
        folder = snapshot_download(
            repo_id,
            local_dir=str(dest),
            tqdm_class=_progress_class(report),  # type: ignore[arg-type]
            max_workers=4,
            endpoint=endpoint or None,
        )
    except Exception as exc:  # the hub raises many kinds: offline, 401, 404, DNS, timeouts
        raise SourceError(
            f"Could not download {repo_id!r} from the Hugging Face hub: {type(exc).__name__}: {exc}"
        ) from exc
    return Path(str(folder))
