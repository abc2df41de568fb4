"""Declarative request and response shapes of the Files and Batches API."""

import re
from typing import Any

from django.conf import settings
from rest_framework import serializers

from batchserver import net
from jobs.models import File

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


class ExpiresAfterSerializer(serializers.Serializer):
    anchor = serializers.ChoiceField(choices=["created_at"])
    seconds = serializers.IntegerField(min_value=3600, max_value=30 * 24 * 3600)


_NESTED_FORM_KEY = re.compile(r"^(\w+)(?:\[(\w+)\]|\.(\w+))$")


def nest_form_fields(data) -> dict[str, Any]:
    """Multipart fields with nested objects folded into dicts.

    The OpenAI SDK flattens ``expires_after`` as ``expires_after[anchor]`` and
    ``expires_after[seconds]``; DRF only reads the dotted form, and would silently drop these.
    """
    result: dict[str, Any] = {}
    for key in data:
        match = _NESTED_FORM_KEY.match(key)
        if match and isinstance(result.setdefault(match[1], {}), dict):
            result[match[1]][match[2] or match[3]] = data[key]
        else:
            result[key] = data[key]
    return result


class FileUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)
    purpose = serializers.ChoiceField(choices=File.UPLOADABLE)
    expires_after = ExpiresAfterSerializer(required=False)


def validate_metadata(value):
    if value is None:
        return value
    if not isinstance(value, dict):
        raise serializers.ValidationError("metadata must be an object of string pairs.")
    if len(value) > MAX_METADATA_PAIRS:
        raise serializers.ValidationError(
            f"metadata may hold at most {MAX_METADATA_PAIRS} pairs.", code="metadata_too_large"
        )
    for key, item in value.items():
        if not isinstance(item, str):
            raise serializers.ValidationError(f"metadata value of {key!r} must be a string.")
        if "\x00" in key or "\x00" in item:  # PostgreSQL's jsonb cannot store one
            raise serializers.ValidationError(
                "metadata must not contain NUL characters.", code="null_characters_not_allowed"
            )
        if len(key) > MAX_METADATA_KEY:
            raise serializers.ValidationError(
                f"metadata keys are at most {MAX_METADATA_KEY} characters.",
                code="metadata_key_too_long",
            )
        if len(item) > MAX_METADATA_VALUE:
            raise serializers.ValidationError(
                f"metadata values are at most {MAX_METADATA_VALUE} characters.",
                code="metadata_value_too_long",
            )
    return value


class BatchCreateSerializer(serializers.Serializer):
    input_file_id = serializers.CharField(max_length=64)
    endpoint = serializers.CharField(max_length=64)
    completion_window = serializers.CharField(max_length=16)
    metadata = serializers.JSONField(
        required=False, allow_null=True, validators=[validate_metadata]
    )
    output_expires_after = ExpiresAfterSerializer(required=False)
    priority = serializers.IntegerField(
        required=False,
        default=0,
        min_value=-100,
        max_value=100,
        help_text="Extension: higher runs first.",
    )
    webhook_url = serializers.URLField(
        required=False,
        allow_blank=True,
        max_length=500,
        help_text="Extension: where batch.completed/failed/cancelled/expired are POSTed "
        "(Standard Webhooks, signed with the key's secret). Default: the key's webhook URL.",
    )
    webhook_progress_percent = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=100,
        help_text="Extension: also send batch.progress every this many percent of lines.",
    )

    def validate_webhook_url(self, value: str) -> str:
        if value:
            try:
                net.check_url(value)
            except net.UnsafeURL as exc:
                raise serializers.ValidationError(
                    f"webhook_url is not allowed: {exc}.", code="invalid_webhook_url"
                ) from None
        return value

    def validate_endpoint(self, value: str) -> str:
        if value not in settings.BATCH_ENDPOINTS:
            raise serializers.ValidationError(
                f"endpoint must be one of {', '.join(settings.BATCH_ENDPOINTS)}.",
                code="unsupported_endpoint",
            )
        return value


class BatchRetrySerializer(serializers.Serializer):
    """Extension: optional overrides for the child batch; anything left out is the parent's."""

    completion_window = serializers.CharField(max_length=16, required=False)
    metadata = serializers.JSONField(
        required=False, allow_null=True, validators=[validate_metadata]
    )
    priority = serializers.IntegerField(required=False, min_value=-100, max_value=100)


# Response shapes, for the OpenAPI schema.
class FileObjectSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="file")
    bytes = serializers.IntegerField()
    created_at = serializers.IntegerField()
    filename = serializers.CharField()
    purpose = serializers.CharField()
    status = serializers.CharField()
    expires_at = serializers.IntegerField(allow_null=True)
    status_details = serializers.CharField(allow_null=True, help_text="Deprecated by OpenAI.")


class FileDeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="file")
    deleted = serializers.BooleanField()


class RequestCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()


class BatchObjectSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="batch")
    endpoint = serializers.CharField()
    errors = serializers.JSONField(allow_null=True)  # type: ignore[assignment]  # the OpenAI field
    input_file_id = serializers.CharField()
    completion_window = serializers.CharField()
    status = serializers.CharField()
    output_file_id = serializers.CharField(allow_null=True)
    error_file_id = serializers.CharField(allow_null=True)
    created_at = serializers.IntegerField()
    in_progress_at = serializers.IntegerField(allow_null=True)
    expires_at = serializers.IntegerField(allow_null=True)
    finalizing_at = serializers.IntegerField(allow_null=True)
    completed_at = serializers.IntegerField(allow_null=True)
    failed_at = serializers.IntegerField(allow_null=True)
    expired_at = serializers.IntegerField(allow_null=True)
    cancelling_at = serializers.IntegerField(allow_null=True)
    cancelled_at = serializers.IntegerField(allow_null=True)
    request_counts = RequestCountsSerializer()
    metadata = serializers.DictField(child=serializers.CharField(), allow_null=True)
    model = serializers.CharField(allow_null=True)
    usage = serializers.JSONField()
    priority = serializers.IntegerField(help_text="Extension: higher runs first.")
    paused = serializers.BooleanField(help_text="Extension: no new chunk starts while paused.")
    parent_batch_id = serializers.CharField(
        allow_null=True, help_text="Extension: the batch this one retries."
    )


def list_serializer(name: str, item: type[serializers.Serializer]) -> serializers.Serializer:
    return type(
        name,
        (serializers.Serializer,),
        {
            "object": serializers.CharField(default="list"),
            "data": item(many=True),
            "first_id": serializers.CharField(allow_null=True),
            "last_id": serializers.CharField(allow_null=True),
            "has_more": serializers.BooleanField(),
        },
    )()
