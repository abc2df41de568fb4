"""The browsable API for staff: every key's objects, read-only, in a browser session.

DRF's browsable renderer on top of the admin's session (``StaffAPIView``: session + CSRF +
``is_staff``). API keys are not accepted here, and clients keep using ``/v1`` with their key;
nothing here writes.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from batchserver.api.staff import StaffAPIView
from batchserver.errors import NotFound
from jobs import selectors

LIMIT = 100


class Browse(StaffAPIView):
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]
    http_method_names = ["get", "head", "options"]


@extend_schema(exclude=True)
class Root(Browse):
    """Read-only lists of every key's objects (newest 100 each)."""

    def get(self, request: Request) -> Response:
        base = request.build_absolute_uri("/api/browse/")
        return Response(
            {name: f"{base}{name}" for name in ("batches", "files", "webhooks", "workers")}
        )


@extend_schema(exclude=True)
class Batches(Browse):
    """Every key's batches, newest first; ``?status=completed`` filters."""

    def get(self, request: Request) -> Response:
        status = request.query_params.get("status", "")[:20]
        return Response({"object": "list", "data": selectors.staff_batches(status, LIMIT)})


@extend_schema(exclude=True)
class BatchDetail(Browse):
    """One batch of any key."""

    def get(self, request: Request, batch_id: str) -> Response:
        found = selectors.staff_batch(batch_id)
        if found is None:
            raise NotFound("batch", batch_id, param="batch_id")
        return Response(found)


@extend_schema(exclude=True)
class Files(Browse):
    """Every key's files, newest first."""

    def get(self, request: Request) -> Response:
        return Response({"object": "list", "data": selectors.staff_files(LIMIT)})


@extend_schema(exclude=True)
class Webhooks(Browse):
    """Every key's webhook messages, newest first; ``?status=dead`` lists dead letters."""

    def get(self, request: Request) -> Response:
        status = request.query_params.get("status", "")[:20]
        return Response({"object": "list", "data": selectors.staff_webhooks(status, LIMIT)})


@extend_schema(exclude=True)
class Workers(Browse):
    """Every recent worker with its current batch."""

    def get(self, request: Request) -> Response:
        return Response({"object": "list", "data": selectors.worker_statuses(None)})
