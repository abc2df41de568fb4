"""Benchmarks in the admin: datasets, prices (editable; costs follow), runs and their results."""

from django.contrib import admin

from benchmarks.models import CloudPrice, Dataset, DatasetItem, GpuPrice, ModelResult, Run, RunBatch
from benchmarks.services import prices


class DatasetItemInline(admin.TabularInline):
    model = DatasetItem
    fields = ("index", "item_id", "messages", "reference", "tags")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    max_num = 0


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "source", "item_count", "created_at")
    list_filter = ("source",)
    search_fields = ("name", "description")
    readonly_fields = ("source", "source_file_id", "item_count", "created_at")
    inlines = [DatasetItemInline]


@admin.register(GpuPrice)
class GpuPriceAdmin(admin.ModelAdmin):
    list_display = ("kind", "hourly_price")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        prices.reprice(ModelResult.objects.filter(run__gpu_kind=obj.kind))


@admin.register(CloudPrice)
class CloudPriceAdmin(admin.ModelAdmin):
    list_display = ("name", "input_per_million", "output_per_million")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        prices.reprice(ModelResult.objects.filter(run__cloud_price=obj))


class RunBatchInline(admin.TabularInline):
    model = RunBatch
    fields = ("position", "model", "repetition", "batch_id", "batch_status", "skipped")
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0


class ModelResultInline(admin.TabularInline):
    model = ModelResult
    fields = (
        "model",
        "status",
        "completed",
        "errors",
        "output_tokens_per_second",
        "latency_p50_ms",
        "latency_p95_ms",
        "quality",
        "cost_per_million_tokens",
        "cloud_cost_per_million_tokens",
        "error",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "dataset", "status", "repetitions", "gpu_kind", "created_at")
    list_filter = ("status",)
    readonly_fields = (
        "dataset",
        "model_names",
        "sampling",
        "repetitions",
        "scorers",
        "scorer_options",
        "status",
        "created_by",
        "created_at",
        "started_at",
        "ended_at",
    )
    fields = ("name", "gpu_kind", "cloud_price", *readonly_fields)
    inlines = [RunBatchInline, ModelResultInline]

    def has_add_permission(self, request):
        return False  # runs start from the page, the API or the command (they plan batches)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        prices.reprice(obj.results.all())
