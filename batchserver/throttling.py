"""Per-API-key request throttling for the API.

Every request counts against its API key (not its address: one key may come from many hosts,
and many keys from one proxy). Requests without a key (the public schema and docs) count
against the client address. The count is kept in the default cache, which is the database
cache, so every web process sees the same count. A throttled request gets 429 in the OpenAI
envelope (``rate_limit_exceeded``) with a ``Retry-After`` header, which the ``openai`` SDK
honours.
"""

from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle

from batchserver import live
from batchserver.models import ApiKey

_OFF = ("", "0", "off")


class ApiKeyRateThrottle(SimpleRateThrottle):
    """``API_THROTTLE_RATE`` (a live setting, e.g. ``600/min``) requests per period per API key."""

    scope = "api_key"

    def get_rate(self) -> str | None:
        # Read on every request (not frozen at import as DRF's THROTTLE_RATES is), so tests and
        # operators can change it without restarting.
        rate = str(live.get("API_THROTTLE_RATE") or "").strip()
        return None if rate in _OFF else rate

    def get_cache_key(self, request, view) -> str:
        user = getattr(request, "user", None)
        ident = f"key-{user.pk}" if isinstance(user, ApiKey) else f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
