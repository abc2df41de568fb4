"""One correlation id per unit of work, so a single grep follows a batch end to end.

The id is born with the API request (the client's ``X-Request-ID`` or a fresh one), stored on
the batch at create (``Batch.correlation_id``), bound again by the worker while it runs that
batch's tasks, and sent to the engine host with each run. Logging picks it up from the context
variable below (``batchserver.logging.CorrelationIdFilter``). Nothing here needs Django, so the
engine host process can import it too.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

HEADER = "X-Request-ID"
ENV_VAR = "BATCHSERVER_CORRELATION_ID"
_VALID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")

_current: ContextVar[str] = ContextVar("correlation_id", default="")


def new_id() -> str:
    return uuid.uuid4().hex


def get() -> str:
    """The id bound to the running request or task ("" when none is)."""
    return _current.get()


def clean(value: str | None) -> str:
    """``value`` if it is a usable id (≤ 64 safe characters), else ""."""
    return value if value and _VALID.match(value) else ""


@contextlib.contextmanager
def bind(correlation_id: str | None) -> Iterator[str]:
    """Bind ``correlation_id`` for the duration of the block (an empty id leaves the old one)."""
    value = clean(correlation_id) or get()
    token = _current.set(value)
    try:
        yield value
    finally:
        _current.reset(token)


class CorrelationIdMiddleware:
    """Bind the request's ``X-Request-ID`` (or a new id) and echo it on the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        correlation_id = clean(request.headers.get(HEADER)) or new_id()
        request.correlation_id = correlation_id
        token = _current.set(correlation_id)
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        response[HEADER] = correlation_id
        return response
