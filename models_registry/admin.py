"""Operators add models and tune how the engine loads each one."""

from django.contrib import admin

from models_registry.models import Model


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "kind",
        "is_active",
        "dtype",
        "max_model_len",
        "enforce_eager",
        "measured_output_tokens_per_second",
        "created_at",
    )
    list_filter = ("kind", "is_active", "dtype")
    search_fields = ("name", "path")
    readonly_fields = ("measured_output_tokens_per_second",)
    fieldsets = (
        (None, {"fields": ("name", "kind", "path", "owned_by", "is_active", "created_at")}),
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
        ("Measured", {"fields": ("measured_output_tokens_per_second",)}),
    )
