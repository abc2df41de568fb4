"""Plugins in the admin: enable and disable (actions), settings checked against the manifest."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages

from batchserver.errors import DomainError
from plugins import services
from plugins.models import PluginData, PluginState


class PluginStateForm(forms.ModelForm):
    class Meta:
        model = PluginState
        fields = ["settings"]
        widgets = {"settings": forms.Textarea(attrs={"rows": 12, "cols": 80})}

    def clean_settings(self):
        values = self.cleaned_data["settings"] or {}
        try:
            services.validate_settings(self.instance.plugin_id, values)
        except DomainError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None
        return values


@admin.register(PluginState)
class PluginStateAdmin(admin.ModelAdmin):
    form = PluginStateForm
    list_display = (
        "plugin_id",
        "enabled",
        "status",
        "error_count",
        "disabled_reason",
        "updated_at",
    )
    list_filter = ("enabled",)
    search_fields = ("plugin_id",)
    actions = ["enable_plugins", "disable_plugins"]
    readonly_fields = (
        "plugin_id",
        "status",
        "enabled",
        "settings_schema",
        "disabled_reason",
        "auto_disabled_at",
        "error_count",
        "last_error",
        "last_error_at",
    )
    fields = ("plugin_id", "status", "enabled", "settings", "settings_schema", *readonly_fields[4:])

    def has_add_permission(self, request) -> bool:
        return False  # plugins are installed packages; their rows appear when they are found

    def changelist_view(self, request, extra_context=None):
        services.ensure_states()
        return super().changelist_view(request, extra_context)

    def _described(self, obj: PluginState) -> dict:
        try:
            return services.get_plugin(obj.plugin_id)
        except DomainError:
            return {"status": "not found", "settings_schema": {}}

    @admin.display(description="status")
    def status(self, obj: PluginState) -> str:
        described = self._described(obj)
        reason = described.get("reason")
        return f"{described['status']}: {reason}" if reason else described["status"]

    @admin.display(description="settings schema (from the manifest)")
    def settings_schema(self, obj: PluginState) -> str:
        return json.dumps(self._described(obj)["settings_schema"], indent=2) or "{}"

    def save_model(self, request, obj, form, change) -> None:
        # Through the service: it checks the schema again and tells every process.
        services.update_settings(obj.plugin_id, form.cleaned_data["settings"])

    @admin.action(description="Enable the selected plugins")
    def enable_plugins(self, request, queryset) -> None:
        self._each(request, queryset, services.enable, "enabled")

    @admin.action(description="Disable the selected plugins")
    def disable_plugins(self, request, queryset) -> None:
        self._each(request, queryset, services.disable, "disabled")

    def _each(self, request, queryset, action, done: str) -> None:
        for state in queryset:
            try:
                action(state.plugin_id)
                self.message_user(request, f"{state.plugin_id} {done}.", messages.SUCCESS)
            except DomainError as exc:
                self.message_user(request, f"{state.plugin_id}: {exc.message}", messages.ERROR)


@admin.register(PluginData)
class PluginDataAdmin(admin.ModelAdmin):
    list_display = ("plugin_id", "key", "updated_at")
    list_filter = ("plugin_id",)
    search_fields = ("key",)
    readonly_fields = ("plugin_id", "key", "value", "updated_at")
