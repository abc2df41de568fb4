"""``GET /v1/models`` and ``GET /v1/models/{id}`` in OpenAI's shape, plus extension fields.

Clients see only the models the registry offers (active, and not failed their last test
unless an operator forced them). Beside OpenAI's ``id``, ``object``, ``created`` and
``owned_by`` each model carries its lineage (``parent``, ``version``, ``origin``, ``base``),
its ``kind`` and ``test_status``; one model's detail adds its ``usage``.
"""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from batchserver.api.errors import NotFoundError
from models_registry.models import Model
from models_registry.selectors import usage_fields

MODEL_FIELDS = {
    "id": serializers.CharField(),
    "object": serializers.CharField(default="model"),
    "created": serializers.IntegerField(),
    "owned_by": serializers.CharField(),
    "parent": serializers.CharField(allow_null=True, help_text="Extension: the parent's id."),
    "version": serializers.IntegerField(help_text="Extension: version within its lineage."),
    "origin": serializers.ChoiceField(
        choices=Model.Origin.values, help_text="Extension: added, converted, fine-tuned, variant."
    ),
    "base": serializers.CharField(help_text="Extension: the root of its lineage."),
    "kind": serializers.ChoiceField(choices=Model.Kind.values, help_text="Extension."),
    "test_status": serializers.ChoiceField(choices=Model.TestStatus.values, help_text="Extension."),
}
ModelObject = inline_serializer("Model", MODEL_FIELDS)
ModelUsage = inline_serializer(
    "ModelUsage",
    {
        "batches": serializers.IntegerField(),
        "requests": serializers.IntegerField(),
        "completed_requests": serializers.IntegerField(),
        "failed_requests": serializers.IntegerField(),
        "input_tokens": serializers.IntegerField(),
        "output_tokens": serializers.IntegerField(),
        "last_used_at": serializers.IntegerField(allow_null=True),
        "output_tokens_per_second": serializers.FloatField(allow_null=True),
    },
)
ModelDetail = inline_serializer("ModelDetail", {**MODEL_FIELDS, "usage": ModelUsage})


class ModelListView(APIView):
    @extend_schema(
        operation_id="listModels",
        responses=inline_serializer(
            "ModelList",
            {"object": serializers.CharField(), "data": serializers.ListField(child=ModelObject)},
        ),
    )
    def get(self, request):
        data = [m.as_openai() for m in Model.objects.offered().select_related("parent")]
        return Response({"object": "list", "data": data})


class ModelDetailView(APIView):
    @extend_schema(operation_id="retrieveModel", responses=ModelDetail)
    def get(self, request, model_id: str):
        model = Model.objects.offered().filter(name=model_id).first()
        if model is None:
            raise NotFoundError("model", model_id, param="model")
        return Response({**model.as_openai(), **usage_fields(model)})
