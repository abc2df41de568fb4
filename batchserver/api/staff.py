"""The staff side of the API: operators in a browser session, never API keys.

Staff endpoints (``/admin/models/…``, ``/admin/benchmarks/…``, ``/api/plugins…``) and the
browsable API for operators authenticate by the admin's session, with Django's CSRF check, and
require ``is_staff``. API keys stay the only way in for clients, and a key never reaches these.
Errors still come in OpenAI's envelope (``batchserver.api.errors``).
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAdminUser
from rest_framework.views import APIView


class StaffSessionAuthentication(SessionAuthentication):
    """The admin's session cookie, with CSRF enforced on unsafe methods (DRF does that)."""

    def authenticate_header(self, request) -> str:
        # A 401 (not DRF's default 403) tells a script that it is not logged in at all.
        return 'Session realm="admin"'


class StaffSchema(AutoSchema):
    """Staff endpoints are documented under the admin session, not the API key."""

    def get_auth(self) -> list[dict[str, list[str]]]:
        return [{"AdminSession": []}]


class StaffAPIView(APIView):
    """Base of every staff endpoint: session + CSRF + ``is_staff``, no key, no throttle."""

    schema = StaffSchema()
    authentication_classes = [StaffSessionAuthentication]
    permission_classes = [IsAdminUser]
    throttle_classes: list = []
