"""Request bodies of the registry's staff endpoints (the services check the values)."""

from rest_framework import serializers


class EngineSettings(serializers.Serializer):
    dtype = serializers.CharField(required=False, allow_blank=True)
    max_model_len = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    gpu_memory_utilization = serializers.FloatField(required=False, allow_null=True)
    tensor_parallel_size = serializers.IntegerField(required=False, min_value=1)
    quantization = serializers.CharField(required=False, allow_blank=True)
    enforce_eager = serializers.BooleanField(required=False)
    cpu_kvcache_space_gib = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    extra_args = serializers.DictField(required=False)


class AddModelRequest(EngineSettings):
    source_kind = serializers.ChoiceField(choices=["folder", "gguf", "hub"])
    source = serializers.CharField(help_text="A folder, a .gguf file (server paths) or a hub id.")
    name = serializers.CharField(required=False, allow_blank=True, help_text="The served id.")
    kind = serializers.ChoiceField(choices=["generate", "embed"], required=False)
    owned_by = serializers.CharField(required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)


class VariantRequest(EngineSettings):
    parent = serializers.CharField(help_text="The model whose weights the variant serves.")
    name = serializers.CharField(help_text="The variant's served id.")
    description = serializers.CharField(required=False, allow_blank=True)


class TestRequest(serializers.Serializer):
    model = serializers.CharField()
    prompts = serializers.ListField(child=serializers.CharField(), required=False)
    max_tokens = serializers.IntegerField(required=False, min_value=1, max_value=4096)


class StateRequest(serializers.Serializer):
    model = serializers.CharField()
    active = serializers.BooleanField(required=False)
    forced = serializers.BooleanField(required=False)
