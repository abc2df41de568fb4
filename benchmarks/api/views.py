"""The staff API of benchmarks: ``/v1/benchmarks/…`` (browsable) and the ``/admin/…`` endpoints
of the system we replace. Staff sessions only (``StaffAPIView``); an API key gets a 401."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from batchserver.api.staff import StaffAPIView
from batchserver.errors import Invalid
from benchmarks import scorers as scoring
from benchmarks import selectors, services
from benchmarks.api.serializers import (
    CloudPriceRequest,
    DatasetRequest,
    GpuPriceRequest,
    RunRequest,
)
from benchmarks.datasets import InvalidDataset
from benchmarks.models import CloudPrice, Dataset, GpuPrice


class BenchmarkView(StaffAPIView):
    """A dataset's bad lines are listed in the error envelope (``error.lines``)."""

    def handle_exception(self, exc):
        if isinstance(exc, InvalidDataset):
            body = {
                "error": {
                    "message": exc.message,
                    "type": "invalid_request_error",
                    "param": exc.param,
                    "code": exc.code,
                    "lines": [{"line": n, "message": m} for n, m in exc.line_errors],
                }
            }
            return Response(body, status=400)
        return super().handle_exception(exc)


def dataset_data(dataset: Dataset, items: bool = False) -> dict:
    data = {
        "id": dataset.pk,
        "object": "benchmark.dataset",
        "name": dataset.name,
        "description": dataset.description,
        "source": dataset.source,
        "source_file_id": dataset.source_file_id or None,
        "item_count": dataset.item_count,
        "created_at": int(dataset.created_at.timestamp()),
    }
    if items:
        data["items"] = [
            {"id": i.item_id, "messages": i.messages, "reference": i.reference, "tags": i.tags}
            for i in dataset.items.order_by("index")[:1000]
        ]
    return data


def start_run(request, data: dict):
    """The one way the API starts a run (both /admin/benchmarks/run and /v1/benchmarks/runs)."""
    serializer = RunRequest(data=data)
    serializer.is_valid(raise_exception=True)
    values = dict(serializer.validated_data)
    dataset = services.get_dataset(values.pop("dataset"))
    models = values.pop("models")
    run = services.start_run(dataset, models, created_by=request.user.get_username(), **values)
    return Response(selectors.run_data(run), status=status.HTTP_201_CREATED)


class RunsView(BenchmarkView):
    @extend_schema(operation_id="listBenchmarkRuns", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        """Recent runs (``limit``, ``model``, ``status``), newest first."""
        found = selectors.runs(
            limit=_limit(request),
            model=request.query_params.get("model"),
            status=request.query_params.get("status"),
        )
        return Response({"object": "list", "data": [selectors.run_data(r) for r in found]})

    @extend_schema(
        operation_id="startBenchmarkRun", request=RunRequest, responses=OpenApiTypes.OBJECT
    )
    def post(self, request):
        """Start a run: a dataset, models, sampling settings, repetitions, scorers, prices."""
        return start_run(request, request.data)


class RunDetailView(BenchmarkView):
    @extend_schema(operation_id="retrieveBenchmarkRun", responses=OpenApiTypes.OBJECT)
    def get(self, request, run_id: int):
        """A run: status, progress and ETA while it runs, results per model."""
        return Response(selectors.run_data(services.get_run(run_id)))


class RunCancelView(BenchmarkView):
    @extend_schema(operation_id="cancelBenchmarkRun", request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, run_id: int):
        """Cancel a run: the running batch is cancelled, the rest never start."""
        run = services.cancel_run(services.get_run(run_id))
        return Response(selectors.run_data(run))


class RunSamplesView(BenchmarkView):
    @extend_schema(operation_id="benchmarkSamples", responses=OpenApiTypes.OBJECT)
    def get(self, request, run_id: int):
        """Every prompt with each model's answer and scores (first repetition)."""
        run = services.get_run(run_id)
        return Response(selectors.comparison_records(selectors.comparison([run.pk])))


class CompareView(BenchmarkView):
    @extend_schema(operation_id="compareBenchmarkRuns", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        """Runs side by side (``runs=1,2``): the matrix of identical samples."""
        ids = parse_ids(request.query_params.get("runs", ""))
        return Response(selectors.comparison_records(selectors.comparison(ids)))


class DatasetsView(BenchmarkView):
    @extend_schema(operation_id="listBenchmarkDatasets", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        """Every dataset (the shipped ones included)."""
        services.ensure_builtin_datasets()
        return Response(
            {"object": "list", "data": [dataset_data(d) for d in Dataset.objects.all()]}
        )

    @extend_schema(
        operation_id="createBenchmarkDataset", request=DatasetRequest, responses=OpenApiTypes.OBJECT
    )
    def post(self, request):
        """A dataset from a JSONL upload (``file``), a stored file (``file_id``) or ``builtin``."""
        name = str(request.data.get("name", "")).strip()
        description = str(request.data.get("description", ""))
        if request.data.get("builtin"):
            dataset = services.get_dataset(request.data["builtin"])
        elif "file" in request.FILES:
            dataset = services.create_dataset_from_upload(name, request.FILES["file"], description)
        elif request.data.get("file_id"):
            dataset = services.create_dataset_from_file(
                str(request.data["file_id"]), name, description
            )
        else:
            raise Invalid("Send a JSONL 'file', a 'file_id' or a 'builtin' name.", param="file")
        return Response(dataset_data(dataset), status=status.HTTP_201_CREATED)


class DatasetDetailView(BenchmarkView):
    @extend_schema(operation_id="retrieveBenchmarkDataset", responses=OpenApiTypes.OBJECT)
    def get(self, request, dataset_id: int):
        """A dataset with its prompts (the first 1,000)."""
        return Response(dataset_data(services.get_dataset(dataset_id), items=True))

    @extend_schema(operation_id="deleteBenchmarkDataset", responses=OpenApiTypes.OBJECT)
    def delete(self, request, dataset_id: int):
        """Delete a dataset that no run used."""
        dataset = services.get_dataset(dataset_id)
        services.delete_dataset(dataset)
        return Response({"id": dataset_id, "object": "benchmark.dataset", "deleted": True})


def price_list() -> dict:
    return {
        "gpu": [
            {"kind": p.kind, "hourly_price": float(p.hourly_price)} for p in GpuPrice.objects.all()
        ],
        "cloud": [
            {
                "name": p.name,
                "input_per_million": float(p.input_per_million),
                "output_per_million": float(p.output_per_million),
            }
            for p in CloudPrice.objects.all()
        ],
    }


class PricesView(BenchmarkView):
    @extend_schema(operation_id="benchmarkPrices", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        """Hourly prices per GPU kind and cloud batch prices per million tokens."""
        return Response(price_list())


class GpuPriceView(BenchmarkView):
    @extend_schema(
        operation_id="setGpuPrice", request=GpuPriceRequest, responses=OpenApiTypes.OBJECT
    )
    def post(self, request):
        """Set a GPU kind's hourly price (stored costs are recomputed)."""
        services.set_gpu_price(request.data.get("kind", ""), request.data.get("hourly_price"))
        return Response(price_list())


class CloudPriceView(BenchmarkView):
    @extend_schema(
        operation_id="setCloudPrice", request=CloudPriceRequest, responses=OpenApiTypes.OBJECT
    )
    def post(self, request):
        """Set a cloud batch price per million input and output tokens."""
        data = request.data
        services.set_cloud_price(
            data.get("name", ""), data.get("input_per_million"), data.get("output_per_million")
        )
        return Response(price_list())


class ScorersView(BenchmarkView):
    @extend_schema(operation_id="benchmarkScorers", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        """The registered scorers (built-ins and any a plugin added)."""
        data = [
            {
                "name": s.name,
                "label": s.label,
                "needs_reference": s.needs_reference,
                "description": s.description,
            }
            for s in scoring.all_scorers().values()
        ]
        return Response({"object": "list", "data": data})


# The /admin/… endpoints of the system we replace.


class AdminRunView(BenchmarkView):
    @extend_schema(
        operation_id="adminBenchmarkRun", request=RunRequest, responses=OpenApiTypes.OBJECT
    )
    def post(self, request):
        """``POST /admin/benchmarks/run``: start a run, as ``POST /v1/benchmarks/runs`` does."""
        return start_run(request, request.data)


class AdminHistoryView(BenchmarkView):
    @extend_schema(operation_id="adminBenchmarkHistory", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        """``GET /admin/workbench/benchmark-history``: runs with results, series per model."""
        model = request.query_params.get("model") or None
        return Response(selectors.history_data(limit=_limit(request), model=model))


def _limit(request) -> int:
    try:
        return max(1, min(int(request.query_params.get("limit", 50)), 500))
    except ValueError:
        raise Invalid("limit must be a whole number.", param="limit") from None


def parse_ids(text: str) -> list[int]:
    try:
        return [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise Invalid("runs must be run ids separated by commas.", param="runs") from None


class AdminStatusView(RunDetailView):
    @extend_schema(operation_id="adminBenchmarkStatus", responses=OpenApiTypes.OBJECT)
    def get(self, request, run_id: int):
        """``GET /admin/benchmarks/status/{id}``: as ``GET /v1/benchmarks/runs/{id}``."""
        return super().get(request, run_id)


class AdminCancelView(RunCancelView):
    @extend_schema(operation_id="adminBenchmarkCancel", request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, run_id: int):
        """``POST /admin/benchmarks/cancel/{id}``: as ``POST /v1/benchmarks/runs/{id}/cancel``."""
        return super().post(request, run_id)
