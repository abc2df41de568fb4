"""Answer 503 in the OpenAI envelope while the database is unreachable, never a traceback.

A view's error (API key lookup, admin login, any query) reaches ``process_exception``; one raised
by a middleware (loading or saving the session, say) never does: Django turns it into a 500 on
the spot. ``server_error``, the ``handler500``, answers those with the same 503.
"""

from __future__ import annotations

import logging
import sys
from urllib.parse import unquote_plus

from django.db import InterfaceError, OperationalError, connections
from django.views import defaults

from batchserver.api.errors import json_error

logger = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        return database_unavailable(request, exception)


def database_unavailable(request, exception):
    """The 503 answer, after dropping connections that the outage broke."""
    logger.warning("database unavailable while serving %s: %s", request.path, exception)
    for conn in connections.all(initialized_only=True):
        conn.close_if_unusable_or_obsolete()
    response = json_error(
        503,
        "The service is temporarily unavailable; retry shortly.",
        type_="server_error",
        code="service_unavailable",
    )
    response["Retry-After"] = "5"
    return response


def server_error(request):
    """``handler500``: a database outage noticed outside a view is still a 503, not a 500."""
    exception = sys.exc_info()[1]
    if isinstance(exception, (OperationalError, InterfaceError)):
        return database_unavailable(request, exception)
    return defaults.server_error(request)


class RejectNulBytesMiddleware:
    """400 for a URL holding a NUL byte (``%00``), before any view puts it into a query.

    No id, cursor or filter value can contain one, and PostgreSQL refuses it in a text
    parameter with an error that would otherwise surface as a 500.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = unquote_plus(request.META.get("QUERY_STRING", ""), errors="replace")
        if "\x00" in request.path_info or "\x00" in query:
            return json_error(
                400,
                "The URL must not contain NUL (%00) characters.",
                code="null_characters_not_allowed",
            )
        return self.get_response(request)
