"""The training process seen from the worker: started in a process group of its own, read line
by line, asked to stop at a step boundary, or killed with its whole group.

The child (``finetuning.trainer``) dies with the worker (``PR_SET_PDEATHSIG`` and a watcher
thread), so a SIGKILL of the worker leaves no training behind; the next slice resumes from the
last checkpoint on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from jobs.worker.engine.host import group_members

MARK = "@@ft "  # finetuning.trainer.MARK (the child imports no Django, nor this module)
LOG_NAME = "trainer.log"


class TrainingProcess:
    """One run of ``python -m finetuning.trainer <folder> <mode> …``."""

    def __init__(self, folder: Path, mode: str, *args: str) -> None:
        self.folder = folder
        self.stop_file = folder / "stop"
        self.stop_file.unlink(missing_ok=True)
        env = {**os.environ, "FINETUNE_PARENT_PID": str(os.getpid()), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "finetuning.trainer", str(folder), mode, *args]
        self.log = (folder / LOG_NAME).open("ab")
        self.popen = subprocess.Popen(
            command,
            cwd=str(settings.BASE_DIR),
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            start_new_session=True,  # its own process group: killed as one
        )
        self.pgid = self.popen.pid
        self._buffer = b""

    def messages(self, poll: float = 1.0) -> Iterator[dict[str, Any] | None]:
        """The child's reports as they come; ``None`` every ``poll`` seconds of silence."""
        assert self.popen.stdout is not None
        stream = self.popen.stdout
        selector = selectors.DefaultSelector()
        selector.register(stream, selectors.EVENT_READ)
        try:
            while True:
                if not selector.select(poll):
                    yield None
                    continue
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    break
                self._buffer += chunk
                *lines, self._buffer = self._buffer.split(b"\n")
                for line in lines:
                    text = line.decode(errors="replace")
                    if text.startswith(MARK):
                        yield json.loads(text[len(MARK) :])
                    elif text.strip():
                        self.log.write(line + b"\n")
                yield None
        finally:
            selector.close()

    def ask_to_stop(self) -> None:
        """Checkpoint at the end of the current step and exit (a slice's end, a pause)."""
        self.stop_file.touch()

    def wait(self, timeout: float | None = None) -> int:
        code = self.popen.wait(timeout)
        self.log.close()
        return code

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the whole group and wait until none of it is left."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)
        deadline = time.monotonic() + timeout
        while group_members(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.log.close()

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = (self.folder / LOG_NAME).read_text(errors="replace")
        except OSError:
            return ""
        kept = [line for line in text.splitlines() if line.strip() and "it/s]" not in line]
        return "\n".join(kept[-lines:])
