"""The values that cross the line between the server and a plugin, typed and documented.

Hook implementations receive and return these (or plain dicts where noted); other apps receive
them from ``plugins.services``. See docs/plugins.md for each hook's contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import IO, Any

HOOK_TYPES = ("schema", "parser", "ui", "export", "rating")


class LineRejected(Exception):
    """Raised by a schema hook: this one line cannot run; it becomes an error line.

    ``code`` and ``message`` go into the line's error (``{"code", "message"}``) in the batch's
    error file. The batch itself goes on.
    """

    def __init__(self, message: str, code: str = "plugin_rejected_line") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class PluginTimeout(BaseException):
    """A hook call exceeded its time budget (a BaseException, so ``except Exception`` inside a
    plugin cannot swallow it)."""


@dataclass(frozen=True)
class BatchInfo:
    """What a hook may know of the batch a line or an answer belongs to."""

    id: str = ""
    endpoint: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """One rating of one answer.

    ``value`` is always normalised to 0..1, higher is better, so the workbench and the
    benchmarks can average, colour and compare scores of any plugin. ``raw`` and ``scale`` keep
    the plugin's own figure (``7`` on ``"1-10"``, ``312`` ``"characters"``). ``value`` is None
    when the rater could not score this answer (a judge's answer without a score); the
    explanation then says why. ``plugin`` is filled in by ``plugins.services``.
    """

    name: str
    value: float | None
    raw: float | None = None
    scale: str = ""
    explanation: str = ""
    plugin: str = ""

    def __post_init__(self) -> None:
        if self.value is not None and not 0.0 <= self.value <= 1.0:
            raise ValueError(f"score {self.name!r}: value {self.value} is outside 0..1")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RatingJob:
    """An asynchronous rating started by a plugin (e.g. an LLM judge running as a batch)."""

    plugin: str
    rated_batch_id: str
    judge_batch_id: str = ""
    status: str = "started"
    detail: str = ""


@dataclass(frozen=True)
class ParsedAnswer:
    """Structured fields a parser hook pulled out of one answer, and which plugin did."""

    plugin: str
    fields: dict[str, Any]


# An export writer: records (dicts) in, bytes out to a binary stream, one record at a time.
ExportWriter = Callable[[Iterable[Mapping[str, Any]], IO[bytes]], None]


@dataclass(frozen=True)
class ExportFormat:
    """A dataset or result export format a plugin contributes.

    ``write(records, stream)`` must consume ``records`` lazily and write as it goes, so that an
    export of 50,000 records runs in flat memory. ``plugin`` is filled in by the server.
    """

    id: str
    name: str
    extension: str
    content_type: str
    write: ExportWriter
    description: str = ""
    plugin: str = ""

    def describe(self) -> dict[str, str]:
        return {
            "id": self.id,
            "name": self.name,
            "extension": self.extension,
            "content_type": self.content_type,
            "description": self.description,
            "plugin": self.plugin,
        }


@dataclass(frozen=True)
class PageRequest:
    """What a plugin page sees of the HTTP request (staff only; CSRF already checked)."""

    method: str
    query: Mapping[str, str]
    form: Mapping[str, str]
    files: Mapping[str, Any]  # name -> an uploaded file (``.read()``, ``.name``, ``.size``)
    user: str
    path: str

    def get(self, name: str, default: str = "") -> str:
        return self.form.get(name) or self.query.get(name) or default


@dataclass(frozen=True)
class Redirect:
    """A page hook's answer that sends the browser elsewhere (a path on this server)."""

    url: str
