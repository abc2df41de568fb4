"""Curation in the admin: datasets and records, read-mostly (review happens on /workbench,
where every change is versioned and kept in the history)."""

from django.contrib import admin

from curation.models import Dataset, Event, Record


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "created_by", "created_at", "task")
    search_fields = ("name", "description")
    readonly_fields = ("owner", "created_by", "created_at", "task", "task_done", "task_total")
    exclude = ("records",)


class EventInline(admin.TabularInline):
    model = Event
    fields = ("at", "actor", "field", "before", "after", "bulk")
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0


@admin.register(Record)
class RecordAdmin(admin.ModelAdmin):
    list_display = ("id", "model", "custom_id", "status", "rating", "gold", "batch_deleted")
    list_filter = ("status", "gold", "rating", "source", "batch_deleted")
    search_fields = ("custom_id", "batch_id", "model")
    readonly_fields = [f.name for f in Record._meta.fields]
    inlines = [EventInline]

    def has_add_permission(self, request) -> bool:
        return False
