"""Operations endpoints (extensions to the OpenAI API): pause, resume and re-prioritise a batch,
dry-run an input file, the queue in execution order, worker status and job history.

Every endpoint is scoped to the calling API key: it sees and changes only its own batches.
Queue positions and ETAs are nevertheless global, counting every key's work ahead.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import selectors
from jobs.api import ops_serializers as s
from jobs.api.serializers import BatchObjectSerializer
from jobs.api.views import get_batch
from jobs.services import dry_run as dry_run_services
from jobs.services import scheduling


class BatchPauseView(APIView):
    parser_classes = [JSONParser, FormParser]

    @extend_schema(
        operation_id="pauseBatch",
        request=None,
        responses=BatchObjectSerializer,
        description="Extension. No new chunk of the batch starts until it is resumed; a chunk "
        "already running finishes and is kept. 409 unless validating or in_progress.",
    )
    def post(self, request, batch_id: str):
        return Response(scheduling.pause_batch(get_batch(request, batch_id)).as_openai())


class BatchResumeView(APIView):
    parser_classes = [JSONParser, FormParser]

    @extend_schema(
        operation_id="resumeBatch",
        request=None,
        responses=BatchObjectSerializer,
        description="Extension. Undo a pause. 409 unless validating or in_progress.",
    )
    def post(self, request, batch_id: str):
        return Response(scheduling.resume_batch(get_batch(request, batch_id)).as_openai())


class BatchPriorityView(APIView):
    parser_classes = [JSONParser, FormParser]

    @extend_schema(
        operation_id="setBatchPriority",
        request=s.PrioritySerializer,
        responses=BatchObjectSerializer,
        description="Extension. Change the priority (-100..100, higher first) of a queued or "
        "running batch; it counts from the next chunk the worker claims.",
    )
    def post(self, request, batch_id: str):
        batch = get_batch(request, batch_id)
        serializer = s.PrioritySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        batch = scheduling.set_priority(batch, serializer.validated_data["priority"])
        return Response(batch.as_openai())


class BatchDryRunView(APIView):
    parser_classes = [JSONParser, FormParser]

    @extend_schema(
        operation_id="dryRunBatch",
        request=s.DryRunSerializer,
        responses=s.DryRunResultSerializer,
        description="Extension. Validate an uploaded input file as a batch would (same errors), "
        "count its prompt tokens and estimate its run time; nothing is created or queued.",
    )
    def post(self, request):
        serializer = s.DryRunSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(dry_run_services.dry_run(request.user, **serializer.validated_data))


class QueueView(APIView):
    @extend_schema(
        operation_id="getQueue",
        responses=s.QueueSerializer,
        description="Extension. Your batches not yet ended, in the worker's execution order "
        "(finishing first, then priority, a loaded model, age; paused last). Positions and "
        "ETAs count every key's batches.",
    )
    def get(self, request):
        return Response(selectors.queue_for(request.user))


class WorkerStatusView(APIView):
    @extend_schema(
        operation_id="getWorkerStatus",
        responses=s.WorkerListSerializer,
        description="Extension. Workers seen in the last hour: heartbeat, state, loaded model, "
        "current work (batch ids of other keys are null), throughput and GPU figures "
        "(`gpu` is absent on machines without a usable NVIDIA GPU).",
    )
    def get(self, request):
        return Response({"object": "list", "data": selectors.worker_statuses(owner=request.user)})


class JobHistoryView(APIView):
    @extend_schema(
        operation_id="getJobHistory",
        parameters=[
            OpenApiParameter("limit", int, description="1-100, default 20."),
            OpenApiParameter("offset", int, description="Rows to skip, default 0."),
            OpenApiParameter("status", str, description="Status, or several comma-separated."),
            OpenApiParameter("model", str),
            OpenApiParameter("created_after", str, description="Unix seconds or ISO 8601."),
            OpenApiParameter("created_before", str, description="Unix seconds or ISO 8601."),
        ],
        responses=s.HistorySerializer,
        description="Extension. Your batches, newest first, with durations and throughput.",
    )
    def get(self, request):
        query = s.HistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        rows = selectors.history(
            request.user,
            statuses=q.get("status"),
            model=q.get("model", ""),
            created_after=q.get("created_after"),
            created_before=q.get("created_before"),
        )
        total = rows.count()
        limit, offset = q["limit"], q["offset"]
        page = rows[offset : offset + limit]
        return Response(
            {
                "object": "list",
                "data": [selectors.history_entry(b) for b in page],
                "total": total,
                "limit": limit,
                "offset": offset,
                "has_more": offset + limit < total,
            }
        )
