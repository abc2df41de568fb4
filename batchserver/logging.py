"""Log records as JSON (production) or plain text (development), each with its correlation id.

``LOG_FORMAT`` picks the formatter: ``json`` (the default unless ``DEBUG``) writes one JSON
object per line with ``time``, ``level``, ``logger``, ``message``, ``correlation_id``,
``process`` and any ``extra`` fields; ``plain`` writes ``time level logger [id] message``.
This module imports no Django, so the engine host process can use it too.
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from batchserver import correlation

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s %(process)d"


class CorrelationIdFilter(logging.Filter):
    """Stamp each record with the correlation id bound where it was logged ("-" when none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "correlation_id", None):
            record.correlation_id = correlation.get() or "-"
        return True


class JsonFormatter(_JsonFormatter):
    """python-json-logger with our field names: one grep-able JSON object per line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", JSON_FIELDS)
        kwargs.setdefault(
            "rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"}
        )
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__(*args, **kwargs)


def logging_config(log_format: str, level: str = "INFO", store: bool = True) -> dict[str, Any]:
    """The ``LOGGING`` dict for ``log_format`` (``json`` or ``plain``).

    ``store``: also keep recent lines in the database for the console (Django processes only).
    """
    if log_format not in ("json", "plain"):
        raise ValueError(f"LOG_FORMAT must be 'json' or 'plain', not {log_format!r}")
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"correlation": {"()": CorrelationIdFilter}},
        "formatters": {
            "plain": {"format": PLAIN_FORMAT},
            "json": {"()": JsonFormatter},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["correlation"],
            },
            # Recent lines for the console's /logs page (a capped table, batchserver/logstore.py).
            "store": {"()": "batchserver.logstore.StoreHandler", "level": "INFO"},
        },
        "root": {"handlers": ["console", "store"], "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"}},
    }
    if not store:
        del config["handlers"]["store"]
        config["root"]["handlers"] = ["console"]
    return config


def configure(log_format: str, level: str = "INFO") -> None:
    """Apply the same configuration outside Django (the engine host process)."""
    import logging.config

    logging.config.dictConfig(logging_config(log_format, level, store=False))
