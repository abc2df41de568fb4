"""``/v1/curation/…``: datasets, records, reviews, bulk actions and exports.

API keys see only the datasets they made (from their own batches) and those datasets' records;
staff (the admin session, browsable) see everything. Views validate, call one service and
answer the serializer's body; domain errors become the OpenAI envelope.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from batchserver.api.pagination import list_body, parse_limit
from batchserver.api.staff import StaffSessionAuthentication
from batchserver.auth import ApiKeyAuthentication
from batchserver.errors import Invalid, NotFound
from batchserver.models import ApiKey
from curation import selectors, services
from curation.api import serializers as s
from curation.filters import RecordFilter, select
from curation.services.building import InvalidUpload


class KeyOrStaff(BasePermission):
    """An API key, or a staff member's session."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if isinstance(user, ApiKey):
            return True
        return bool(user and getattr(user, "is_staff", False) and user.is_active)


class CurationView(APIView):
    authentication_classes = [ApiKeyAuthentication, StaffSessionAuthentication]
    permission_classes = [KeyOrStaff]

    def owner(self) -> ApiKey | None:
        """The key whose datasets this caller sees; None for staff (all)."""
        user = self.request.user
        return user if isinstance(user, ApiKey) else None

    def actor(self) -> str:
        user = self.request.user
        if isinstance(user, ApiKey):
            return f"key:{user.name or user.prefix}"[:150]
        assert isinstance(user, AbstractBaseUser)
        return user.get_username()

    def valid(self, serializer_class: type, data: Any = None) -> dict[str, Any]:
        found = serializer_class(data=self.request.data if data is None else data)
        found.is_valid(raise_exception=True)
        return dict(found.validated_data)

    def handle_exception(self, exc):
        if isinstance(exc, InvalidUpload):
            error = {
                "message": exc.message,
                "type": "invalid_request_error",
                "param": exc.param,
                "code": exc.code,
                "lines": [{"line": n, "message": m} for n, m in exc.line_errors],
            }
            return Response({"error": error}, status=400)
        if isinstance(exc, services.StaleRecord):
            error = {
                "message": exc.message,
                "type": "invalid_request_error",
                "param": exc.param,
                "code": exc.code,
            }
            return Response({"error": error, "current": s.record_data(exc.current, True)}, 409)
        return super().handle_exception(exc)

    def dataset_body(self, dataset) -> dict[str, Any]:
        return s.dataset_data(dataset, selectors.progress([dataset.pk])[dataset.pk])


class DatasetsView(CurationView):
    @extend_schema(operation_id="listCurationDatasets", request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        found = selectors.datasets(self.owner())
        progress = selectors.progress([d.pk for d in found])
        data = [s.dataset_data(d, progress[d.pk]) for d in found]
        return Response(list_body(data, False))

    @extend_schema(
        operation_id="createCurationDataset", request=s.DatasetCreate, responses=OpenApiTypes.OBJECT
    )
    def post(self, request):
        data = self.valid(s.DatasetCreate)
        kwargs = {
            "owner": self.owner(),
            "created_by": self.actor(),
            "description": data["description"],
        }
        if data["batch_ids"]:
            dataset = services.create_dataset_from_batches(
                data["name"], data["batch_ids"], **kwargs
            )
        else:
            dataset = services.create_dataset(data["name"], **kwargs)
        return Response(self.dataset_body(dataset), status=status.HTTP_201_CREATED)


class DatasetUploadView(CurationView):
    @extend_schema(
        operation_id="uploadCurationDataset", request=s.DatasetUpload, responses=OpenApiTypes.OBJECT
    )
    def post(self, request):
        data = self.valid(s.DatasetUpload)
        dataset = services.create_dataset_from_upload(
            data["name"],
            data["file"],
            owner=self.owner(),
            created_by=self.actor(),
            description=data["description"],
        )
        return Response(self.dataset_body(dataset), status=status.HTTP_201_CREATED)


class FromBenchmarkView(CurationView):
    @extend_schema(
        operation_id="curationDatasetFromBenchmark",
        request=s.FromBenchmark,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request):
        data = self.valid(s.FromBenchmark)
        if self.owner() is not None:  # benchmark runs belong to the console: staff only
            raise NotFound("benchmark run", str(data["run_id"]), param="run_id")
        dataset = services.create_dataset_from_run(
            data["run_id"], name=data["name"], created_by=self.actor()
        )
        return Response(self.dataset_body(dataset), status=status.HTTP_201_CREATED)


class MergeView(CurationView):
    @extend_schema(
        operation_id="mergeCurationDatasets", request=s.Merge, responses=OpenApiTypes.OBJECT
    )
    def post(self, request):
        data = self.valid(s.Merge)
        found = [services.get_dataset(i, self.owner()) for i in data["dataset_ids"]]
        merged = services.merge_datasets(
            found, data["name"], owner=self.owner(), created_by=self.actor()
        )
        return Response(self.dataset_body(merged), status=status.HTTP_201_CREATED)


class DatasetDetailView(CurationView):
    @extend_schema(
        operation_id="retrieveCurationDataset", request=None, responses=OpenApiTypes.OBJECT
    )
    def get(self, request, dataset_id: int):
        services.mark_deleted_batches()
        return Response(self.dataset_body(services.get_dataset(dataset_id, self.owner())))

    @extend_schema(
        operation_id="deleteCurationDataset", request=None, responses=OpenApiTypes.OBJECT
    )
    def delete(self, request, dataset_id: int):
        services.delete_dataset(services.get_dataset(dataset_id, self.owner()))
        return Response({"id": dataset_id, "object": "curation.dataset", "deleted": True})


class AddBatchesView(CurationView):
    @extend_schema(
        operation_id="addBatchesToCurationDataset",
        request=s.AddBatches,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request, dataset_id: int):
        dataset = services.get_dataset(dataset_id, self.owner())
        data = self.valid(s.AddBatches)
        dataset = services.add_batches(dataset, data["batch_ids"], self.owner())
        return Response(self.dataset_body(dataset), status=status.HTTP_202_ACCEPTED)


class SplitView(CurationView):
    @extend_schema(
        operation_id="splitCurationDataset", request=s.Split, responses=OpenApiTypes.OBJECT
    )
    def post(self, request, dataset_id: int):
        dataset = services.get_dataset(dataset_id, self.owner())
        data = self.valid(s.Split)
        counts = services.split_dataset(dataset, data["validation_fraction"], data["seed"])
        return Response({**self.dataset_body(dataset), "split": counts})


class DedupeView(CurationView):
    @extend_schema(
        operation_id="dedupeCurationDataset", request=None, responses=OpenApiTypes.OBJECT
    )
    def post(self, request, dataset_id: int):
        dataset = services.get_dataset(dataset_id, self.owner())
        removed = services.dedupe_dataset(dataset)
        return Response({**self.dataset_body(dataset), "removed": removed})


class ScoreView(CurationView):
    @extend_schema(operation_id="scoreCurationDataset", request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, dataset_id: int):
        dataset = services.start_scoring(services.get_dataset(dataset_id, self.owner()))
        return Response(self.dataset_body(dataset), status=status.HTTP_202_ACCEPTED)


class ExportView(CurationView):
    @extend_schema(
        operation_id="exportCurationDataset", request=s.ExportRequest, responses=OpenApiTypes.OBJECT
    )
    def post(self, request, dataset_id: int):
        dataset = services.get_dataset(dataset_id, self.owner())
        data = self.valid(s.ExportRequest)
        result = services.export_dataset(
            dataset,
            data["format"],
            only=data.get("only"),
            split=data["split"],
            k=data["k"],
            owner=self.owner(),
            benchmark_name=data["benchmark_name"] if self.owner() is None else "",
        )
        return Response({"object": "curation.export", **result.as_dict()}, status=201)


class FormatsView(CurationView):
    @extend_schema(
        operation_id="listCurationExportFormats", request=None, responses=OpenApiTypes.OBJECT
    )
    def get(self, request):
        return Response(list_body(services.available_formats(), False))


class RecordsView(CurationView):
    """Records a filter selects, by id, ``after`` and ``limit`` (1–100) like OpenAI's lists."""

    @extend_schema(operation_id="listCurationRecords", request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        flt = RecordFilter.from_params(request.query_params)
        limit = parse_limit(request.query_params.get("limit"), 20, 100)
        records = select(flt, self.owner()).select_related("content").order_by("id")
        after = request.query_params.get("after")
        if after:
            if not after.isdigit():
                raise Invalid("after must be a record id.", param="after")
            records = records.filter(id__gt=int(after))
        rows = list(records[: limit + 1])
        data = [s.record_data(r) for r in rows[:limit]]
        return Response(list_body(data, len(rows) > limit))


class RecordDetailView(CurationView):
    @extend_schema(
        operation_id="retrieveCurationRecord", request=None, responses=OpenApiTypes.OBJECT
    )
    def get(self, request, record_id: int):
        record = services.get_record(record_id, self.owner())
        return Response(s.record_data(record, detail=True))

    @extend_schema(
        operation_id="reviewCurationRecord", request=s.ReviewRequest, responses=OpenApiTypes.OBJECT
    )
    def patch(self, request, record_id: int):
        record = services.get_record(record_id, self.owner())
        data = self.valid(s.ReviewRequest)
        version = data.pop("version")
        record = services.review_record(record, version=version, actor=self.actor(), changes=data)
        return Response(s.record_data(record, detail=True))


class HistoryView(CurationView):
    @extend_schema(
        operation_id="curationRecordHistory", request=None, responses=OpenApiTypes.OBJECT
    )
    def get(self, request, record_id: int):
        record = services.get_record(record_id, self.owner())
        events = [s.event_data(e) for e in record.events.order_by("at", "id")]
        return Response({"object": "list", "data": events})


class BulkView(CurationView):
    @extend_schema(
        operation_id="bulkCurationRecords", request=s.BulkRequest, responses=OpenApiTypes.OBJECT
    )
    def post(self, request):
        data = self.valid(s.BulkRequest)
        flt = RecordFilter.from_params(data["filter"])
        if data["action"] == "add_to_dataset":
            if "dataset_id" not in data:
                raise Invalid("add_to_dataset needs dataset_id.", param="dataset_id")
            target = services.get_dataset(data["dataset_id"], self.owner())
            changed = services.add_selection(target, flt, self.owner())
        else:
            changed = services.bulk_action(
                flt, data["action"], actor=self.actor(), value=data["value"], owner=self.owner()
            )
        return Response({"object": "curation.bulk", "action": data["action"], "changed": changed})
