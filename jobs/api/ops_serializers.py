"""Request and response shapes of the operations API: scheduling, queue, workers, history."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from jobs.models import Batch
from jobs.services.scheduling import PRIORITY_RANGE


class PrioritySerializer(serializers.Serializer):
    priority = serializers.IntegerField(
        min_value=PRIORITY_RANGE[0], max_value=PRIORITY_RANGE[1], help_text="Higher runs first."
    )


class DryRunSerializer(serializers.Serializer):
    input_file_id = serializers.CharField(max_length=64)
    endpoint = serializers.CharField(max_length=64)

    def validate_endpoint(self, value: str) -> str:
        if value not in settings.BATCH_ENDPOINTS:
            raise serializers.ValidationError(
                f"endpoint must be one of {', '.join(settings.BATCH_ENDPOINTS)}.",
                code="unsupported_endpoint",
            )
        return value


class TimestampField(serializers.Field):
    """Unix seconds or an ISO 8601 date-time (UTC when it names no zone)."""

    default_error_messages = {"invalid": "Give unix seconds or an ISO 8601 date-time."}

    def to_internal_value(self, data) -> datetime:
        text = str(data).strip()
        try:
            return datetime.fromtimestamp(float(text), tz=UTC)
        except (ValueError, OverflowError, OSError):
            pass  # not a number: an ISO date-time?
        try:
            value = parse_datetime(text)
        except ValueError:
            value = None
        if value is None:
            self.fail("invalid")
        try:  # a date at the edge of the calendar may not exist in UTC
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        except (OverflowError, ValueError):
            self.fail("invalid")

    def to_representation(self, value: datetime) -> int:
        return int(value.timestamp())


class HistoryQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
    offset = serializers.IntegerField(min_value=0, max_value=10**9, default=0)
    status = serializers.CharField(
        required=False, help_text="A status, or several separated by commas."
    )
    model = serializers.CharField(required=False)
    created_after = TimestampField(required=False, help_text="Unix seconds or ISO 8601.")
    created_before = TimestampField(required=False, help_text="Unix seconds or ISO 8601.")

    def validate_status(self, value: str) -> list[str]:
        statuses = [s.strip() for s in value.split(",") if s.strip()]
        unknown = [s for s in statuses if s not in Batch.Status.values]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown status {unknown[0]!r}; use one of {', '.join(Batch.Status.values)}.",
                code="invalid_value",
            )
        return statuses


# Response shapes, for the OpenAPI schema.
class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    percent = serializers.FloatField()


class QueueEntrySerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="Global place in the worker's order.")
    id = serializers.CharField()
    object = serializers.CharField(default="queue.entry")
    kind = serializers.CharField(help_text="Kind of GPU work: batch, fine_tuning.job, …")
    model = serializers.CharField(allow_null=True)
    priority = serializers.IntegerField()
    paused = serializers.BooleanField()
    status = serializers.CharField()
    running = serializers.BooleanField(help_text="A chunk of it is running right now.")
    created_at = serializers.IntegerField()
    progress = ProgressSerializer()
    remaining_seconds = serializers.FloatField(allow_null=True)
    eta_seconds = serializers.FloatField(allow_null=True)


class QueueSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = QueueEntrySerializer(many=True)  # type: ignore[assignment]  # OpenAI lists have a "data" key
    total_active = serializers.IntegerField()
    workers_alive = serializers.IntegerField()


class WorkerStatusSerializer(serializers.Serializer):
    worker_id = serializers.CharField()
    object = serializers.CharField(default="worker")
    hostname = serializers.CharField()
    pid = serializers.IntegerField()
    started_at = serializers.IntegerField()
    last_heartbeat = serializers.IntegerField()
    seconds_since_heartbeat = serializers.FloatField()
    alive = serializers.BooleanField()
    state = serializers.CharField()
    loaded_model = serializers.CharField(allow_null=True)
    current_batch_id = serializers.CharField(allow_null=True)
    current_chunk = serializers.IntegerField(allow_null=True)
    requests_done = serializers.IntegerField()
    output_tokens_done = serializers.IntegerField()
    recent_output_tokens_per_second = serializers.FloatField(allow_null=True)
    restart_requested_at = serializers.IntegerField(allow_null=True)
    gpu = serializers.JSONField(required=False, help_text="Absent without a usable GPU.")


class WorkerListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = WorkerStatusSerializer(many=True)  # type: ignore[assignment]  # OpenAI lists have a "data" key


class HistoryEntrySerializer(serializers.Serializer):
    batch_id = serializers.CharField()
    object = serializers.CharField(default="batch.history")
    status = serializers.CharField()
    model = serializers.CharField(allow_null=True)
    endpoint = serializers.CharField()
    priority = serializers.IntegerField()
    created_at = serializers.IntegerField()
    in_progress_at = serializers.IntegerField(allow_null=True)
    completed_at = serializers.IntegerField(allow_null=True)
    failed_at = serializers.IntegerField(allow_null=True)
    cancelled_at = serializers.IntegerField(allow_null=True)
    expired_at = serializers.IntegerField(allow_null=True)
    request_counts = serializers.JSONField()
    duration_seconds = serializers.FloatField(allow_null=True)
    requests_per_second = serializers.FloatField(allow_null=True)
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    tokens_per_second = serializers.FloatField(allow_null=True)
    output_tokens_per_second = serializers.FloatField(allow_null=True)
    webhook = serializers.BooleanField()
    has_errors = serializers.BooleanField()
    correlation_id = serializers.CharField()


class HistorySerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = HistoryEntrySerializer(many=True)  # type: ignore[assignment]  # OpenAI lists have a "data" key
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    has_more = serializers.BooleanField()


class DryRunModelSerializer(serializers.Serializer):
    lines = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    estimated_output_tokens = serializers.IntegerField()
    token_count_method = serializers.CharField()
    measured_output_tokens_per_second = serializers.FloatField(allow_null=True)
    estimated_seconds = serializers.FloatField(allow_null=True)


class DryRunResultSerializer(serializers.Serializer):
    object = serializers.CharField(default="batch.dry_run")
    input_file_id = serializers.CharField()
    endpoint = serializers.CharField()
    lines = serializers.IntegerField()
    valid = serializers.BooleanField(help_text="True when the file would pass validation.")
    valid_lines = serializers.IntegerField()
    invalid_lines = serializers.IntegerField()
    errors = serializers.JSONField(help_text="Same shape as a failed batch's errors.data.")  # type: ignore[assignment]  # the OpenAI field
    models = serializers.ListField(child=serializers.CharField())
    prompt_tokens = serializers.IntegerField()
    estimated_output_tokens = serializers.IntegerField()
    token_count_method = serializers.CharField(help_text="tokenizer, estimate or mixed.")
    token_count_note = serializers.CharField()
    estimated_seconds = serializers.FloatField(allow_null=True)
    by_model = serializers.DictField(child=DryRunModelSerializer())
