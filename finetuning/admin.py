"""The fine_tuning_jobs table in the admin: read-only rows; actions call the services."""

from __future__ import annotations

from django.contrib import admin, messages

from batchserver.errors import DomainError
from finetuning import services
from finetuning.models import FineTuningCheckpoint, FineTuningEvent, FineTuningJob


class EventInline(admin.TabularInline):
    model = FineTuningEvent
    fields = ("created_at", "level", "type", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-created_at",)
    max_num = 0


class CheckpointInline(admin.TabularInline):
    model = FineTuningCheckpoint
    fields = ("step_number", "metrics", "registered_model", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0


def _apply(modeladmin, request, queryset, service, verb: str) -> None:
    done = 0
    for job in queryset:
        try:
            service(job)
            done += 1
        except DomainError as exc:
            modeladmin.message_user(request, exc.message, messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{done} job(s) {verb}.")


@admin.action(description="Cancel the selected jobs")
def cancel_jobs(modeladmin, request, queryset):
    _apply(modeladmin, request, queryset, services.request_cancel, "cancelled")


@admin.action(description="Pause the selected jobs")
def pause_jobs(modeladmin, request, queryset):
    _apply(modeladmin, request, queryset, services.request_pause, "pausing")


@admin.action(description="Resume the selected jobs")
def resume_jobs(modeladmin, request, queryset):
    _apply(modeladmin, request, queryset, services.resume_job, "resumed")


@admin.register(FineTuningJob)
class FineTuningJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "owner",
        "model",
        "status",
        "step",
        "total_steps",
        "fine_tuned_model",
        "created_at",
    )
    list_filter = ("status", "model")
    search_fields = ("id", "fine_tuned_model", "training_file")
    actions = [cancel_jobs, pause_jobs, resume_jobs]
    inlines = [CheckpointInline, EventInline]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False  # jobs are created through the API or the /fine-tuning page
