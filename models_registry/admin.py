"""Operators add models and tune how the engine loads each one.

A folder typed into the admin is checked like one added from ``/add-model`` (config,
tokenizer, weights, an architecture vLLM serves) and refused with the reason, so no row points
at files the worker cannot load. GGUF files and hub ids are added from ``/add-model`` (they take
a conversion or a download, with progress). Actions call the registry's services.
"""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from batchserver.errors import DomainError
from models_registry import model_tests, services
from models_registry.builtin import BUILTIN_PATH
from models_registry.inspection import check_folder
from models_registry.models import Model, ModelImport, ModelTest


class ModelForm(forms.ModelForm):
    """The admin's form of a model (its fields come from the fieldsets)."""

    def clean_path(self) -> str:
        path = self.cleaned_data.get("path", "")
        if path and path != BUILTIN_PATH:
            changed = self.instance.pk is None or self.instance.path != path
            if changed:
                try:
                    check_folder(path)
                except DomainError as exc:
                    raise forms.ValidationError(exc.message, code=exc.code) from None
        return path


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    form = ModelForm
    list_display = (
        "name",
        "kind",
        "is_active",
        "test_status",
        "test_forced",
        "origin",
        "parent",
        "version",
        "dtype",
        "max_model_len",
        "measured_output_tokens_per_second",
        "created_at",
    )
    list_filter = ("kind", "is_active", "test_status", "origin", "dtype")
    search_fields = ("name", "path", "source", "description")
    readonly_fields = (
        "measured_output_tokens_per_second",
        "test_status",
        "last_load_seconds",
        "last_load_memory_bytes",
        "last_peak_memory_bytes",
        "last_loaded_at",
        "page_link",
    )
    actions = ["test_models", "activate", "deactivate"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "kind",
                    "path",
                    "owned_by",
                    "is_active",
                    "description",
                    "created_at",
                    "page_link",
                ),
                "description": "A local Hugging Face folder, checked before it is saved. "
                "A GGUF file or a hub id: <a href='/add-model'>Add model</a>.",
            },
        ),
        ("Lineage", {"fields": ("parent", "version", "origin", "source")}),
        (
            "Engine settings",
            {
                "fields": (
                    "dtype",
                    "max_model_len",
                    "gpu_memory_utilization",
                    "tensor_parallel_size",
                    "quantization",
                    "enforce_eager",
                    "cpu_kvcache_space_gib",
                    "extra_args",
                )
            },
        ),
        (
            "Tests and measurements",
            {
                "fields": (
                    "test_status",
                    "test_forced",
                    "measured_output_tokens_per_second",
                    "last_load_seconds",
                    "last_load_memory_bytes",
                    "last_peak_memory_bytes",
                    "last_loaded_at",
                )
            },
        ),
    )

    @admin.display(description="Console page")
    def page_link(self, obj: Model) -> str:
        if obj.pk is None:
            return "–"
        return format_html('<a href="/models/{}">/models/{}</a>', obj.name, obj.name)

    @admin.action(description="Test the selected models (a few prompts through the worker)")
    def test_models(self, request, queryset) -> None:
        for model in queryset:
            try:
                test = model_tests.start_test(model, created_by=request.user.get_username())
                self.message_user(request, f"Test {test.pk} of {model.name} queued.")
            except DomainError as exc:
                self.message_user(request, exc.message, level=messages.ERROR)

    @admin.action(description="Activate the selected models")
    def activate(self, request, queryset) -> None:
        for model in queryset:
            services.set_active(model, True)
        self.message_user(request, f"{queryset.count()} model(s) activated.")

    @admin.action(description="Deactivate the selected models (history kept)")
    def deactivate(self, request, queryset) -> None:
        for model in queryset:
            services.set_active(model, False)
        self.message_user(request, f"{queryset.count()} model(s) deactivated.")


@admin.register(ModelTest)
class ModelTestAdmin(admin.ModelAdmin):
    list_display = (
        "pk",
        "model",
        "status",
        "output_tokens_per_second",
        "load_seconds",
        "created_at",
    )
    list_filter = ("status",)
    readonly_fields = [f.name for f in ModelTest._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ModelImport)
class ModelImportAdmin(admin.ModelAdmin):
    list_display = (
        "pk",
        "name",
        "source_kind",
        "status",
        "done_bytes",
        "total_bytes",
        "created_at",
    )
    list_filter = ("status", "source_kind")
    readonly_fields = [f.name for f in ModelImport._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
