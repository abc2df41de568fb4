"""The plugin objects of the staff API, declared once: the schema shows what the views return."""

from rest_framework import serializers

from plugins.types import HOOK_TYPES


class DeclaredSerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    sample_data = serializers.DictField()


class PageSerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    url = serializers.CharField()


class PluginSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    name = serializers.CharField()
    version = serializers.CharField(allow_blank=True)
    description = serializers.CharField(allow_blank=True)
    author = serializers.CharField(allow_blank=True)
    source = serializers.CharField(help_text="Entry point (with its distribution) or folder.")
    status = serializers.ChoiceField(choices=["enabled", "disabled", "auto_disabled", "refused"])
    enabled = serializers.BooleanField()
    loadable = serializers.BooleanField()
    reason_code = serializers.CharField(
        allow_blank=True,
        help_text="Why it cannot load: invalid_manifest, incompatible_version, invalid_hooks, "
        "missing_settings, invalid_settings, import_error, duplicate_id.",
    )
    reason = serializers.CharField(allow_blank=True)
    disabled_reason = serializers.CharField(allow_blank=True)
    auto_disabled_at = serializers.DateTimeField(allow_null=True)
    min_server_version = serializers.CharField(allow_blank=True)
    max_server_version = serializers.CharField(allow_blank=True)
    hook_types = serializers.ListField(child=serializers.ChoiceField(choices=HOOK_TYPES))
    settings = serializers.DictField()
    settings_schema = serializers.DictField()
    components = DeclaredSerializer(many=True)
    pages = PageSerializer(many=True)
    error_count = serializers.IntegerField()
    last_error = serializers.CharField(allow_blank=True)
    last_error_at = serializers.DateTimeField(allow_null=True)

    def get_object(self, obj) -> str:
        return "plugin"


class PluginListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = PluginSerializer(many=True)


class ComponentSerializer(DeclaredSerializer):
    plugin = serializers.CharField()


class ComponentListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = ComponentSerializer(many=True)


class RenderRequestSerializer(serializers.Serializer):
    component = serializers.CharField()
    data = serializers.DictField(required=False, default=dict)


class RenderedSerializer(serializers.Serializer):
    plugin = serializers.CharField()
    component = serializers.CharField()
    html = serializers.CharField(help_text="Server-rendered, every value escaped.")
