"""``Authorization: Bearer <key>`` authentication for the API."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions

from batchserver.models import ApiKey


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates a request by its API key; ``request.user`` is the ``ApiKey``."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <key>'.")
        key = ApiKey.find(raw, max_age=settings.API_KEY_CACHE_SECONDS)
        if key is None:
            raise exceptions.AuthenticationFailed("Incorrect API key provided.")
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return (key, key)

    def authenticate_header(self, request) -> str:
        return self.keyword
