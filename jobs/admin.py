"""Operator console for files, batches and their requests. The API owns the data: read-only."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from batchserver.api.errors import ApiError
from jobs.models import Batch, BatchChunk, BatchRequest, File, InvalidTransition
from jobs.services import batches as batch_services


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def file_link(file_id):
    if not file_id:
        return "-"
    url = reverse("admin:jobs_file_change", args=[file_id])
    return format_html('<a href="{}">{}</a>', url, file_id)


@admin.register(File)
class FileAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "filename",
        "purpose",
        "owner",
        "bytes",
        "line_count",
        "created_at",
        "expires_at",
    )
    list_filter = ("purpose", "created_at")
    search_fields = ("id", "filename", "owner__name")
    date_hierarchy = "created_at"


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "status",
        "model",
        "owner",
        "endpoint",
        "progress",
        "priority",
        "created_at",
        "completed_at",
    )
    list_filter = ("status", "endpoint", "model", "created_at")
    search_fields = ("id", "model", "owner__name", "input_file__id")
    date_hierarchy = "created_at"
    actions = ["cancel_batches"]
    readonly_fields = ("input_file_link", "output_file_link", "error_file_link")
    exclude = ("input_file", "output_file", "error_file")

    @admin.display(description="progress")
    def progress(self, obj: Batch) -> str:
        done = obj.request_completed + obj.request_failed
        return f"{done}/{obj.request_total} ({obj.request_failed} failed)"

    @admin.display(description="input file")
    def input_file_link(self, obj):
        return file_link(obj.input_file_id)

    @admin.display(description="output file")
    def output_file_link(self, obj):
        return file_link(obj.output_file_id)

    @admin.display(description="error file")
    def error_file_link(self, obj):
        return file_link(obj.error_file_id)

    @admin.action(description="Cancel selected batches")
    def cancel_batches(self, request, queryset):
        cancelled, refused = 0, []
        for batch in queryset:
            try:
                batch_services.request_cancel(batch)
                cancelled += 1
            except (ApiError, InvalidTransition):
                refused.append(f"{batch.id} ({batch.status})")
        self.message_user(request, f"Cancelling {cancelled} batch(es).")
        if refused:
            self.message_user(request, "Not cancellable: " + ", ".join(refused), messages.WARNING)


@admin.register(BatchRequest)
class BatchRequestAdmin(ReadOnlyAdmin):
    list_display = (
        "custom_id",
        "batch",
        "line",
        "status",
        "response_status",
        "input_tokens",
        "output_tokens",
        "finished_at",
    )
    list_filter = ("status", "response_status")
    search_fields = ("custom_id", "batch__id", "public_id")
    list_select_related = ("batch",)


@admin.register(BatchChunk)
class BatchChunkAdmin(ReadOnlyAdmin):
    list_display = ("batch", "index", "size", "status", "worker_id", "leased_until", "attempts")
    list_filter = ("status",)
    search_fields = ("batch__id", "worker_id")
