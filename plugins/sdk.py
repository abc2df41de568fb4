"""Everything a plugin author imports: the hook marker, the value types and the widgets.

    from plugins.sdk import hookimpl, Score

    manifest = {"id": "length-rater", "name": "Length rater", "version": "1.0",
                "hooks": ["rating"]}

    @hookimpl
    def batchserver_rate(answer):
        return [Score("short", 1.0 if len(answer) < 500 else 0.0)]

See docs/plugins.md for every hook and a tutorial.
"""

from plugins import host, ui
from plugins.hookspecs import hookimpl
from plugins.manifest import Manifest
from plugins.types import (
    BatchInfo,
    ExportFormat,
    LineRejected,
    PageRequest,
    ParsedAnswer,
    RatingJob,
    Redirect,
    Score,
)

__all__ = [
    "BatchInfo",
    "ExportFormat",
    "LineRejected",
    "Manifest",
    "PageRequest",
    "ParsedAnswer",
    "RatingJob",
    "Redirect",
    "Score",
    "hookimpl",
    "host",
    "ui",
]
