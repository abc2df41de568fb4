"""Request shapes of the benchmark API (values are checked by the services, which name the
parameter at fault); response bodies come from ``benchmarks.selectors``."""

from __future__ import annotations

from rest_framework import serializers


class RunRequest(serializers.Serializer):
    dataset = serializers.CharField(help_text="Dataset id or name (builtin/arithmetic, …).")
    models = serializers.ListField(child=serializers.CharField(), allow_empty=True)
    temperature = serializers.CharField(required=False, default="0")
    max_tokens = serializers.CharField(required=False, default="64")
    top_p = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    seed = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    repetitions = serializers.CharField(required=False, default="1")
    scorers = serializers.ListField(child=serializers.CharField(), required=False)
    regex = serializers.CharField(required=False, allow_blank=True, default="")
    gpu_kind = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    cloud_price = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    name = serializers.CharField(required=False, allow_blank=True, default="")


class DatasetRequest(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    file = serializers.FileField(required=False, help_text="A JSONL upload.")
    file_id = serializers.CharField(required=False, help_text="A stored file, e.g. a gold set.")
    builtin = serializers.ChoiceField(
        choices=["builtin/arithmetic", "builtin/capitals"], required=False
    )


class GpuPriceRequest(serializers.Serializer):
    kind = serializers.CharField()
    hourly_price = serializers.CharField()


class CloudPriceRequest(serializers.Serializer):
    name = serializers.CharField()
    input_per_million = serializers.CharField()
    output_per_million = serializers.CharField()
