"""The fine-tuning API: validate the request, call one service, answer OpenAI's object."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from batchserver.api.errors import NotFoundError
from batchserver.api.pagination import cursor_page, list_body
from finetuning import services
from finetuning.api import serializers as s
from finetuning.models import FineTuningCheckpoint, FineTuningJob

LIST_PARAMS = [
    OpenApiParameter("after", str, description="Id of the object after which the page starts."),
    OpenApiParameter("limit", int, description="1-100, default 20."),
]
TAGS = ["Fine-tuning"]


def get_job(request, job_id: str) -> FineTuningJob:
    try:
        return FineTuningJob.objects.select_related("owner").owned_by(request.user).get(id=job_id)
    except FineTuningJob.DoesNotExist:
        raise NotFoundError("fine-tuning job", job_id, param="fine_tuning_job_id") from None


def metadata_filter(params) -> dict[str, str]:
    """``metadata[key]=value`` query parameters, as OpenAI's list takes them."""
    return {
        key[len("metadata[") : -1]: value
        for key, value in params.items()
        if key.startswith("metadata[") and key.endswith("]")
    }


class JobListCreateView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="createFineTuningJob",
        tags=TAGS,
        request=s.JobCreateSerializer,
        responses=s.JobOut,
    )
    def post(self, request):
        serializer = s.JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = services.create_job(
            request.user,
            model=data["model"],
            training_file=data["training_file"],
            validation_file=data.get("validation_file"),
            suffix=data.get("suffix"),
            seed=data.get("seed"),
            metadata=data.get("metadata"),
            hyperparameters=serializer.validated_hyperparameters(),
            method=(data.get("method") or {}).get("type", "supervised"),
            priority=data.get("priority", 0),
        )
        return Response(job.as_openai())

    @extend_schema(
        operation_id="listFineTuningJobs",
        tags=TAGS,
        parameters=LIST_PARAMS,
        responses=s.page_of("FineTuningJobList", s.JobOut),
    )
    def get(self, request):
        jobs = FineTuningJob.objects.select_related("owner").owned_by(request.user)
        for key, value in metadata_filter(request.query_params).items():
            jobs = jobs.filter(**{f"metadata__{key}": value})
        params = request.query_params.copy()
        params["order"] = "desc"
        rows, has_more = cursor_page(jobs, params)
        return Response(list_body([j.as_openai() for j in rows], has_more))


class JobDetailView(APIView):
    @extend_schema(operation_id="retrieveFineTuningJob", tags=TAGS, responses=s.JobOut)
    def get(self, request, job_id: str):
        return Response(get_job(request, job_id).as_openai())


class _JobActionView(APIView):
    parser_classes = [JSONParser, FormParser]
    service = staticmethod(services.request_cancel)

    def post(self, request, job_id: str):
        return Response(self.service(get_job(request, job_id)).as_openai())


class JobCancelView(_JobActionView):
    service = staticmethod(services.request_cancel)

    @extend_schema(operation_id="cancelFineTuningJob", tags=TAGS, request=None, responses=s.JobOut)
    def post(self, request, job_id: str):
        return super().post(request, job_id)


class JobPauseView(_JobActionView):
    service = staticmethod(services.request_pause)

    @extend_schema(operation_id="pauseFineTuningJob", tags=TAGS, request=None, responses=s.JobOut)
    def post(self, request, job_id: str):
        return super().post(request, job_id)


class JobResumeView(_JobActionView):
    service = staticmethod(services.resume_job)

    @extend_schema(operation_id="resumeFineTuningJob", tags=TAGS, request=None, responses=s.JobOut)
    def post(self, request, job_id: str):
        return super().post(request, job_id)


class JobEventsView(APIView):
    @extend_schema(
        operation_id="listFineTuningEvents",
        tags=TAGS,
        parameters=LIST_PARAMS,
        responses=s.page_of("FineTuningEventList", s.EventOut),
    )
    def get(self, request, job_id: str):
        job = get_job(request, job_id)
        params = request.query_params.copy()
        params["order"] = "desc"
        rows, has_more = cursor_page(job.events.all(), params)
        return Response(list_body([e.as_openai() for e in rows], has_more))


class JobCheckpointsView(APIView):
    @extend_schema(
        operation_id="listFineTuningCheckpoints",
        tags=TAGS,
        parameters=LIST_PARAMS,
        responses=s.page_of("FineTuningCheckpointList", s.CheckpointOut),
    )
    def get(self, request, job_id: str):
        job = get_job(request, job_id)
        params = request.query_params.copy()
        params["order"] = "desc"
        rows, has_more = cursor_page(job.checkpoints.select_related("job__owner"), params)
        return Response(list_body([c.as_openai() for c in rows], has_more))


class CheckpointRegisterView(APIView):
    parser_classes = [JSONParser, FormParser]

    @extend_schema(
        operation_id="registerFineTuningCheckpoint",
        tags=TAGS,
        description="Extension. Serve a checkpoint as a model of its own "
        "(`ft:…:ckpt-step-N`): merged and registered by a task; its event says when.",
        request=None,
        responses=s.CheckpointOut,
    )
    def post(self, request, job_id: str, checkpoint_id: str):
        job = get_job(request, job_id)
        try:
            checkpoint = job.checkpoints.select_related("job__owner").get(pk=checkpoint_id)
        except FineTuningCheckpoint.DoesNotExist:
            raise NotFoundError("checkpoint", checkpoint_id, param="checkpoint_id") from None
        services.register_checkpoint(checkpoint)
        return Response(checkpoint.as_openai())
