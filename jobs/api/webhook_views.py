"""Extension endpoints: a key's webhook messages, its dead letters, and replay."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from batchserver.api.errors import ApiError, NotFoundError
from batchserver.api.pagination import cursor_page, list_body
from jobs import webhooks
from jobs.api.serializers import list_serializer
from jobs.models import WebhookDelivery


class WebhookDeliverySerializer(serializers.Serializer):
    """Response shape, for the OpenAPI schema."""

    id = serializers.CharField(help_text="The webhook-id header (msg_…), kept on replay.")
    object = serializers.CharField(default="webhook.delivery")
    batch_id = serializers.CharField()
    type = serializers.ChoiceField(choices=WebhookDelivery.Event.choices)
    url = serializers.CharField()
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices)
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)
    next_attempt_at = serializers.IntegerField(allow_null=True)
    created_at = serializers.IntegerField()
    delivered_at = serializers.IntegerField(allow_null=True)
    dead_at = serializers.IntegerField(allow_null=True)
    payload = serializers.JSONField()


def get_delivery(request, delivery_id: str) -> WebhookDelivery:
    delivery = (
        WebhookDelivery.objects.owned_by(request.user)
        .select_related("batch__owner")
        .filter(id=delivery_id)
        .first()
    )
    if delivery is None:
        raise NotFoundError("webhook delivery", delivery_id, param="delivery_id")
    return delivery


class WebhookDeliveryListView(APIView):
    @extend_schema(
        operation_id="listWebhookDeliveries",
        description="Extension. This key's webhook messages, newest first; `status=dead` lists "
        "the dead letters.",
        parameters=[
            OpenApiParameter("status", str, enum=list(WebhookDelivery.Status.values)),
            OpenApiParameter("batch_id", str),
            OpenApiParameter("after", str),
            OpenApiParameter("limit", int, description="1-100, default 20."),
        ],
        responses=list_serializer("WebhookDeliveryList", WebhookDeliverySerializer),
    )
    def get(self, request):
        queryset = WebhookDelivery.objects.owned_by(request.user)
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in WebhookDelivery.Status.values:
                choices = ", ".join(WebhookDelivery.Status.values)
                raise ApiError(
                    f"status must be one of {choices}.", param="status", code="invalid_value"
                )
            queryset = queryset.filter(status=wanted)
        if request.query_params.get("batch_id"):
            queryset = queryset.filter(batch_id=request.query_params["batch_id"])
        params = request.query_params.copy()
        params["order"] = "desc"
        rows, has_more = cursor_page(queryset, params)
        return Response(list_body([d.as_api() for d in rows], has_more))


class WebhookDeliveryDetailView(APIView):
    @extend_schema(operation_id="retrieveWebhookDelivery", responses=WebhookDeliverySerializer)
    def get(self, request, delivery_id: str):
        return Response(get_delivery(request, delivery_id).as_api())


class WebhookDeliveryReplayView(APIView):
    parser_classes = [JSONParser, FormParser]

    @extend_schema(
        operation_id="replayWebhookDelivery",
        description="Extension. Sends a dead (or delivered) message again with the same "
        "webhook-id, a fresh signature and a fresh set of attempts. 409 while it is pending.",
        request=None,
        responses=WebhookDeliverySerializer,
    )
    def post(self, request, delivery_id: str):
        delivery = webhooks.replay(get_delivery(request, delivery_id))
        return Response(delivery.as_api())
