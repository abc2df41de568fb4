"""Request and response shapes of the fine-tuning API (OpenAI's)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512


@extend_schema_field({"oneOf": [{"type": "string", "enum": ["auto"]}, {"type": "number"}]})
class AutoOrNumber(serializers.Field):
    """``"auto"`` or a number within bounds (an int where ``integer``)."""

    def __init__(self, *, integer: bool, low: float, high: float, **kwargs: Any) -> None:
        self.integer, self.low, self.high = integer, low, high
        super().__init__(required=False, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if data == "auto":
            return data
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise serializers.ValidationError("must be 'auto' or a number.")
        if self.integer and int(data) != data:
            raise serializers.ValidationError("must be 'auto' or an integer.")
        if not self.low <= data <= self.high:
            raise serializers.ValidationError(f"must be between {self.low} and {self.high}.")
        return int(data) if self.integer else float(data)

    def to_representation(self, value: Any) -> Any:
        return value


class HyperparametersSerializer(serializers.Serializer):
    n_epochs = AutoOrNumber(integer=True, low=1, high=50)
    batch_size = AutoOrNumber(integer=True, low=1, high=256)
    learning_rate_multiplier = AutoOrNumber(integer=False, low=1e-4, high=10)


class SupervisedSerializer(serializers.Serializer):
    hyperparameters = HyperparametersSerializer(required=False)


class MethodSerializer(serializers.Serializer):
    type = serializers.CharField()
    supervised = SupervisedSerializer(required=False)


def validate_metadata(value: Any) -> Any:
    if value is None:
        return value
    if not isinstance(value, dict):
        raise serializers.ValidationError("metadata must be an object of string pairs.")
    if len(value) > MAX_METADATA_PAIRS:
        raise serializers.ValidationError(f"metadata may hold at most {MAX_METADATA_PAIRS} pairs.")
    for key, item in value.items():
        if (
            not isinstance(item, str)
            or len(key) > MAX_METADATA_KEY
            or len(item) > MAX_METADATA_VALUE
        ):
            raise serializers.ValidationError(
                f"metadata {key!r}: keys of at most {MAX_METADATA_KEY} characters, string "
                f"values of at most {MAX_METADATA_VALUE}."
            )
        if "\x00" in key or "\x00" in item:
            raise serializers.ValidationError("metadata may not contain NUL characters.")
    return value


class JobCreateSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=200)
    training_file = serializers.CharField(max_length=40)
    validation_file = serializers.CharField(max_length=40, required=False, allow_null=True)
    suffix = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True)
    seed = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=2**31 - 1
    )
    metadata = serializers.JSONField(
        required=False, allow_null=True, validators=[validate_metadata]
    )
    hyperparameters = HyperparametersSerializer(required=False)
    method = MethodSerializer(required=False)
    integrations = serializers.ListField(required=False, allow_null=True, max_length=0)
    priority = serializers.IntegerField(required=False, min_value=-100, max_value=100)

    def validate_suffix(self, value: str | None) -> str | None:
        if value and not all(c.isalnum() or c in "-_." for c in value):
            raise serializers.ValidationError("suffix may hold letters, digits, '-', '_' and '.'.")
        return value

    def validated_hyperparameters(self) -> dict[str, Any]:
        """``method.supervised.hyperparameters`` over the deprecated top-level ones."""
        data = self.validated_data
        top = dict(data.get("hyperparameters") or {})
        method = data.get("method") or {}
        nested = (method.get("supervised") or {}).get("hyperparameters") or {}
        return {**top, **nested}


class HyperparametersOut(serializers.Serializer):
    batch_size = serializers.JSONField()
    learning_rate_multiplier = serializers.JSONField()
    n_epochs = serializers.JSONField()


class ErrorOut(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    param = serializers.CharField(allow_null=True)


class JobOut(serializers.Serializer):
    """The FineTuningJob object (``FineTuningJob.as_openai``)."""

    id = serializers.CharField()
    object = serializers.CharField()
    created_at = serializers.IntegerField()
    model = serializers.CharField()
    organization_id = serializers.CharField()
    training_file = serializers.CharField()
    validation_file = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(
        choices=[
            "validating_files",
            "queued",
            "running",
            "pausing",
            "paused",
            "succeeded",
            "failed",
            "cancelled",
        ]
    )
    error = ErrorOut(allow_null=True)
    fine_tuned_model = serializers.CharField(allow_null=True)
    finished_at = serializers.IntegerField(allow_null=True)
    estimated_finish = serializers.IntegerField(allow_null=True)
    hyperparameters = HyperparametersOut()
    result_files = serializers.ListField(child=serializers.CharField())
    seed = serializers.IntegerField()
    trained_tokens = serializers.IntegerField(allow_null=True)
    integrations = serializers.ListField(child=serializers.DictField())
    metadata = serializers.DictField(allow_null=True)
    method = serializers.DictField()
    suffix = serializers.CharField(allow_null=True)


class EventOut(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    created_at = serializers.IntegerField()
    level = serializers.ChoiceField(choices=["info", "warn", "error"])
    message = serializers.CharField()
    type = serializers.ChoiceField(choices=["message", "metrics"])
    data = serializers.DictField()  # type: ignore[assignment]  # OpenAI's field name


class CheckpointOut(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    created_at = serializers.IntegerField()
    fine_tuned_model_checkpoint = serializers.CharField()
    fine_tuning_job_id = serializers.CharField()
    step_number = serializers.IntegerField()
    metrics = serializers.DictField()


def page_of(name: str, item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    return type(
        name,
        (serializers.Serializer,),
        {
            "object": serializers.CharField(),
            "data": item(many=True),
            "first_id": serializers.CharField(allow_null=True),
            "last_id": serializers.CharField(allow_null=True),
            "has_more": serializers.BooleanField(),
        },
    )
