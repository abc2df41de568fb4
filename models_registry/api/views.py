"""``GET /v1/models`` and ``GET /v1/models/{id}`` in OpenAI's shape."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from batchserver.api.errors import NotFoundError
from models_registry.models import Model

ModelObject = inline_serializer(
    "Model",
    {
        "id": serializers.CharField(),
        "object": serializers.CharField(default="model"),
        "created": serializers.IntegerField(),
        "owned_by": serializers.CharField(),
    },
)


class ModelListView(APIView):
    @extend_schema(
        operation_id="listModels",
        responses=inline_serializer(
            "ModelList",
            {"object": serializers.CharField(), "data": serializers.ListField(child=ModelObject)},
        ),
    )
    def get(self, request):
        data = [m.as_openai() for m in Model.objects.active()]
        return Response({"object": "list", "data": data})


class ModelDetailView(APIView):
    @extend_schema(operation_id="retrieveModel", responses=ModelObject)
    def get(self, request, model_id: str):
        model = Model.objects.active().filter(name=model_id).first()
        if model is None:
            raise NotFoundError("model", model_id, param="model")
        return Response(model.as_openai())
