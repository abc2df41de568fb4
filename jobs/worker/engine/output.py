"""The engine host's output, as log records of the worker (so the log store keeps them too).

The engine host and every process vLLM starts under it write to one pipe (their stdout and
stderr). A thread in the worker reads it line by line and logs each line again in the worker,
marked as the ``engine`` process, with the correlation id of the batch the engine is running
at that moment, so the console's log page and a batch's page show the engine's own lines.
Three shapes of line are understood: the host's own records (the worker's ``LOG_FORMAT``,
JSON or plain), vLLM's ``LEVEL mm-dd hh:mm:ss [file:line] message`` (prefixed with
``(EngineCore… pid=N)`` in its children), and anything else (tracebacks, progress bars), kept
as is. Nothing here needs Django.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass

LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
_VLLM = re.compile(
    r"^(?:\((?P<who>[^()]*?)\s+pid=(?P<pid>\d+)\)\s+)?"
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+"
    r"\d\d-\d\d\s+\d\d:\d\d:\d\d(?:\.\d+)?\s+"
    r"\[(?P<where>[^\]]*)\]\s?(?P<message>.*)$"
)
_PLAIN = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+) (?P<logger>\S+) "
    r"\[(?P<correlation_id>[^\]]*)\] (?P<message>.*)$"
)
# An exception's own line ("module.SomeError: what went wrong"), as a traceback ends.
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception): \S")
# vLLM's processes log a traceback line by line through their logger: "[file:line] (Worker) …".
_VLLM_WHERE = re.compile(r"^\[[^\]]*\] (?:\([^()]*\) )*")
_CHILD = re.compile(r"^\([^()]*?\s+pid=\d+\) ")  # vLLM's prefix on its children's lines
# Relayed lines are logged through this logger's handlers (the root's): the record keeps the
# name of the logger that wrote it in the host.
RELAY = logging.getLogger("jobs.worker.engine.output")
READ_BYTES = 65_536
LINE_CHARS = 8_000


@dataclass
class Line:
    level: int
    logger: str
    message: str
    pid: int | None = None
    correlation_id: str = ""


def parse(text: str, in_traceback: bool = False) -> Line:
    """What one line of the host's output says: its level, its logger and its message."""
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and "message" in data and data.get("level") in LEVELS:
            cid = str(data.get("correlation_id") or "")
            return Line(
                level=LEVELS[data["level"]],
                logger=str(data.get("logger") or "engine"),
                message=str(data["message"]),
                pid=_int(data.get("process")),
                correlation_id="" if cid == "-" else cid,
            )
    found = _VLLM.match(text)
    if found:
        message = found["message"]
        if found["who"]:
            message = f"({found['who']}) {message}"
        return Line(
            level=LEVELS[found["level"]],
            logger="vllm",
            message=f"[{found['where']}] {message}",
            pid=_int(found["pid"]),
        )
    found = _PLAIN.match(text)
    if found and found["level"] in LEVELS:
        cid = found["correlation_id"]
        return Line(
            level=LEVELS[found["level"]],
            logger=found["logger"],
            message=found["message"],
            correlation_id="" if cid == "-" else cid,
        )
    body = _CHILD.sub("", text, count=1)
    level = logging.ERROR if in_traceback or body.startswith("Traceback") else logging.INFO
    return Line(level=level, logger="engine.output", message=text)


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


class OutputRelay:
    """Reads a pipe of the host's output in a thread and logs every line in this process."""

    def __init__(self, fd: int, host_pid: int) -> None:
        self.fd = fd
        self.host_pid = host_pid
        # The batch the engine is working for now; set by the worker around each load and run.
        self.correlation_id = ""
        # The exception lines that ended the tracebacks written so far (the first is usually
        # the root cause of a failed load: the processes above it then fail in turn).
        self.exceptions: list[str] = []
        self._in_traceback = False
        self.thread = threading.Thread(target=self._run, name="engine-output", daemon=True)

    def start(self) -> OutputRelay:
        self.thread.start()
        return self

    def _run(self) -> None:
        pending = b""
        try:
            while True:
                try:
                    chunk = os.read(self.fd, READ_BYTES)
                except OSError:
                    break
                if not chunk:
                    break
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    self.relay(raw)
            if pending:
                self.relay(pending)
        finally:
            try:
                os.close(self.fd)
            except OSError:
                pass

    def _note_exception(self, text: str) -> None:
        if len(self.exceptions) < 20:
            self.exceptions.append(text[:500])

    def relay(self, raw: bytes) -> None:
        # A progress bar rewrites its line with carriage returns: keep what it showed last.
        text = raw.decode("utf-8", "replace").rsplit("\r", 1)[-1].rstrip()
        if not text.strip():
            return
        line = parse(text[:LINE_CHARS], self._in_traceback)
        body = _CHILD.sub("", text, count=1)
        if body.startswith("Traceback"):
            self._in_traceback = True
        elif self._in_traceback and not body[:1].isspace():
            self._in_traceback = False  # the exception's own line ends the traceback
            self._note_exception(body)
        elif line.logger == "vllm" and line.level >= logging.ERROR:
            said = _VLLM_WHERE.sub("", line.message, count=1)
            if _EXCEPTION.match(said):
                self._note_exception(said)
        if line.level < logging.getLogger().getEffectiveLevel():
            return
        record = logging.LogRecord(line.logger, line.level, "", 0, line.message, None, None)
        record.process = line.pid or self.host_pid
        record.process_kind = "engine"
        record.correlation_id = line.correlation_id or self.correlation_id or "-"
        try:
            RELAY.handle(record)
        except Exception:  # a handler that fails must not stop the engine's output
            pass
