"""Operator actions over HTTP, for staff only (behind the admin login, CSRF-protected)."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from jobs.services.recovery import reset_stuck_jobs
from jobs.services.scheduling import request_worker_restart


@require_POST
@staff_member_required
def reset_stuck_jobs_view(request: HttpRequest) -> JsonResponse:
    """Requeue work whose worker is gone, settle stuck batches; answer with the counts."""
    report = reset_stuck_jobs()
    return JsonResponse({**report.as_dict(), "summary": report.summary()})


@require_POST
@staff_member_required
def restart_worker_view(request: HttpRequest) -> JsonResponse:
    """Ask a worker (``worker_id`` in the form) or every live one to restart its engine.

    The worker honours it between chunks: the running chunk finishes and is committed, the
    engine host is shut down, and the next chunk loads the model afresh.
    """
    worker_id = request.POST.get("worker_id", "").strip()
    workers = request_worker_restart([worker_id] if worker_id else None)
    return JsonResponse({"restart_requested": workers})
