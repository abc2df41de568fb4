"""Answer 503 in the OpenAI envelope while the database is unreachable, never a traceback."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError, connections

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
