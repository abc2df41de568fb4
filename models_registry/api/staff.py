"""The registry's staff endpoints (``/admin/models/…``): session + CSRF, ``is_staff`` only.

``POST /admin/models/add`` registers a folder at once (201, the model) or starts an import of
a GGUF file or a hub id (202, the import, followed at ``GET /admin/models/add/{id}``);
``POST /admin/models/test`` queues a test (202), ``GET /admin/models/test/{id}`` answers it.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from batchserver.api.staff import StaffAPIView
from models_registry import adding, model_tests, services
from models_registry.api.serializers import (
    AddModelRequest,
    StateRequest,
    TestRequest,
    VariantRequest,
)
from models_registry.models import Model
from models_registry.selectors import usage_fields


def model_data(model: Model) -> dict:
    """A model as the staff API answers it: the client's view, plus what operators need."""
    return {
        **model.as_openai(),
        "is_active": model.is_active,
        "offered": model.is_offered,
        "test_forced": model.test_forced,
        "path": model.path,
        "source": model.source,
        "description": model.description,
        "engine_settings": model.engine_settings(),
        **usage_fields(model),
    }


def _user(request) -> str:
    return request.user.get_username()


class AddModelView(StaffAPIView):
    @extend_schema(
        operation_id="adminModelAdd", request=AddModelRequest, responses=OpenApiTypes.OBJECT
    )
    def post(self, request):
        body = AddModelRequest(data=request.data)
        body.is_valid(raise_exception=True)
        found = adding.add_model(created_by=_user(request), **body.validated_data)
        if isinstance(found, Model):
            return Response(model_data(found), status=status.HTTP_201_CREATED)
        return Response(found.as_dict(), status=status.HTTP_202_ACCEPTED)


class ImportStatusView(StaffAPIView):
    @extend_schema(operation_id="adminModelImport", responses=OpenApiTypes.OBJECT)
    def get(self, request, import_id: int):
        return Response(adding.get_import(import_id).as_dict())


class ImportRetryView(StaffAPIView):
    @extend_schema(
        operation_id="adminModelImportRetry", request=None, responses=OpenApiTypes.OBJECT
    )
    def post(self, request, import_id: int):
        job = adding.retry_import(adding.get_import(import_id))
        return Response(job.as_dict(), status=status.HTTP_202_ACCEPTED)


class TestModelView(StaffAPIView):
    @extend_schema(
        operation_id="adminModelTest", request=TestRequest, responses=OpenApiTypes.OBJECT
    )
    def post(self, request):
        body = TestRequest(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        test = model_tests.start_test(
            services.get_model(data["model"]),
            prompts=data.get("prompts"),
            max_tokens=data.get("max_tokens", 32),
            created_by=_user(request),
        )
        return Response(test.as_dict(), status=status.HTTP_202_ACCEPTED)


class TestStatusView(StaffAPIView):
    @extend_schema(operation_id="adminModelTestStatus", responses=OpenApiTypes.OBJECT)
    def get(self, request, test_id: int):
        return Response(model_tests.get_test(test_id).as_dict())


class VariantView(StaffAPIView):
    @extend_schema(
        operation_id="adminModelVariant", request=VariantRequest, responses=OpenApiTypes.OBJECT
    )
    def post(self, request):
        body = VariantRequest(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        parent = services.get_model(data.pop("parent"))
        variant = services.register_variant(parent, **data)
        return Response(model_data(variant), status=status.HTTP_201_CREATED)


class StateView(StaffAPIView):
    @extend_schema(
        operation_id="adminModelState", request=StateRequest, responses=OpenApiTypes.OBJECT
    )
    def post(self, request):
        """Activate or deactivate a model, or force it to be offered despite a failed test."""
        body = StateRequest(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        model = services.get_model(data["model"])
        if "active" in data:
            services.set_active(model, data["active"])
        if "forced" in data:
            services.force_offer(model, data["forced"])
        return Response(model_data(model))


class ModelStaffDetailView(StaffAPIView):
    @extend_schema(operation_id="adminModelDetail", responses=OpenApiTypes.OBJECT)
    def get(self, request, model_id: str):
        return Response(model_data(services.get_model(model_id)))
