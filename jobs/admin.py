"""Operator console for files, batches and their requests. The API owns the data: read-only."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.http import FileResponse, Http404
from django.urls import path, reverse
from django.utils.html import format_html

from batchserver import audit
from batchserver.errors import DomainError
from jobs import webhooks
from jobs.models import Batch, BatchChunk, BatchRequest, File, WebhookDelivery, Worker
from jobs.services import batches as batch_services
from jobs.services import files as file_services
from jobs.services import scheduling
from jobs.worker.control import request_worker_restart


class ReadOnlyAdmin(admin.ModelAdmin):
    """The API owns these rows: operators look, and act only through actions that call services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
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
    exclude = ("content",)
    readonly_fields = ("download",)

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm("jobs.delete_file")

    def delete_model(self, request, obj):
        file_services.delete_file(obj)

    def delete_queryset(self, request, queryset):
        for file in queryset:
            file_services.delete_file(file)

    def get_urls(self):
        view = self.admin_site.admin_view(self.download_view)
        return [
            path("<str:file_id>/download/", view, name="jobs_file_download"),
            *super().get_urls(),
        ]

    def download_view(self, request, file_id: str):
        file = File.objects.filter(pk=file_id).first()
        if file is None or not self.has_view_permission(request, file):
            raise Http404("No such file.")
        try:
            handle = file.content.open("rb")
        except FileNotFoundError:
            raise Http404("The file's content is missing.") from None
        return FileResponse(handle, as_attachment=True, filename=file.filename)

    @admin.display(description="content")
    def download(self, obj: File) -> str:
        url = reverse("admin:jobs_file_download", args=[obj.pk])
        return format_html('<a href="{}">Download {}</a> ({} bytes)', url, obj.filename, obj.bytes)


class EndpointFilter(admin.SimpleListFilter):
    """The endpoints a batch may have, from the settings: no DISTINCT over every batch."""

    title = "endpoint"
    parameter_name = "endpoint"

    def lookups(self, request, model_admin):
        return [(e, e) for e in settings.BATCH_ENDPOINTS]

    def queryset(self, request, queryset):
        return queryset.filter(endpoint=self.value()) if self.value() else queryset


class BatchActionForm(ActionForm):
    priority = forms.IntegerField(required=False, label="priority", min_value=-100, max_value=100)


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
    list_filter = ("status", EndpointFilter, "model", "created_at")
    search_fields = ("id", "model", "owner__name", "input_file__id")
    date_hierarchy = "created_at"
    list_per_page = 50  # page speed with tens of thousands of batches (bench/pages.py)
    action_form = BatchActionForm
    actions = ["cancel_batches", "pause_batches", "resume_batches", "set_priority"]
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

    def _each(self, request, queryset, action: str, call, done: str) -> None:
        """Call a service on every selected batch (any key's), recording each in the audit."""
        count, refused = 0, []
        for batch in queryset:
            try:
                call(batch)
                count += 1
                audit.record(request.user, f"batch.{action}", batch.pk, "from the admin")
            except DomainError as exc:
                refused.append(f"{batch.id} ({batch.status})")
                audit.record(request.user, f"batch.{action}", batch.pk, exc.message, ok=False)
        self.message_user(request, done.format(count=count))
        if refused:
            self.message_user(request, f"Not {action}: " + ", ".join(refused), messages.WARNING)

    @admin.action(description="Cancel selected batches")
    def cancel_batches(self, request, queryset):
        self._each(
            request,
            queryset,
            "cancel",
            batch_services.request_cancel,
            "Cancelling {count} batch(es).",
        )

    @admin.action(description="Pause selected batches")
    def pause_batches(self, request, queryset):
        self._each(request, queryset, "pause", scheduling.pause_batch, "Paused {count} batch(es).")

    @admin.action(description="Resume selected batches")
    def resume_batches(self, request, queryset):
        self._each(
            request, queryset, "resume", scheduling.resume_batch, "Resumed {count} batch(es)."
        )

    @admin.action(description="Set the priority of selected batches (the number beside)")
    def set_priority(self, request, queryset):
        raw = request.POST.get("priority", "")
        try:
            priority = int(raw)
        except ValueError:
            self.message_user(request, "priority must be a whole number.", messages.ERROR)
            return
        self._each(
            request,
            queryset,
            "priority",
            lambda batch: scheduling.set_priority(batch, priority),
            f"Priority {priority} for {{count}} batch(es).",
        )


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


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """Webhook messages and dead letters; "replay" sends one again with the same webhook-id."""

    list_display = (
        "id",
        "event_type",
        "batch",
        "status",
        "attempts",
        "last_status_code",
        "short_error",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    )
    list_filter = ("status", "event_type", "created_at")
    search_fields = ("id", "batch__id", "url", "batch__owner__name")
    list_select_related = ("batch",)
    date_hierarchy = "created_at"
    actions = ["replay_deliveries"]

    @admin.display(description="last error")
    def short_error(self, obj) -> str:
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    @admin.action(description="Replay selected webhook deliveries (same webhook-id)")
    def replay_deliveries(self, request, queryset):
        replayed, refused = 0, []
        for delivery in queryset.select_related("batch__owner"):
            try:
                webhooks.replay(delivery)
                replayed += 1
            except DomainError:
                refused.append(delivery.id)
        for delivery_id in set(queryset.values_list("id", flat=True)) - set(refused):
            audit.record(request.user, "webhook.replay", delivery_id, "from the admin")
        self.message_user(request, f"Replaying {replayed} webhook delivery(ies).")
        if refused:
            self.message_user(request, "Still pending: " + ", ".join(refused), messages.WARNING)


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    """Worker processes (one per GPU) as their heartbeats report them; restart asks nicely."""

    list_display = (
        "worker_id",
        "state",
        "alive",
        "loaded_model",
        "current_work",
        "requests_done",
        "last_heartbeat",
    )
    list_filter = ("state", "hostname")
    search_fields = ("worker_id", "hostname", "loaded_model")
    actions = ["restart_workers"]

    @admin.display(boolean=True)
    def alive(self, obj: Worker) -> bool:
        return obj.is_alive

    @admin.action(description="Restart the engine of selected workers (between units)")
    def restart_workers(self, request, queryset):
        asked = request_worker_restart(list(queryset.values_list("worker_id", flat=True)))
        audit.record(request.user, "worker.restart", ", ".join(asked), "from the admin")
        self.message_user(request, f"Engine restart requested for {', '.join(asked)}.")
