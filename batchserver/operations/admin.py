"""The audit trail, the stored settings and the log store in the admin (read-only views)."""

from django.contrib import admin

from batchserver.models import AuditEntry, LogLine, RuntimeSetting


class ReadOnly(admin.ModelAdmin):
    list_per_page = 50

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnly):
    """Who did what, when: every operator action of the pages and the admin."""

    list_display = ("at", "actor", "action", "target", "ok", "detail")
    list_filter = ("action", "ok", "actor")
    search_fields = ("target", "actor", "detail")
    date_hierarchy = "at"


@admin.register(RuntimeSetting)
class RuntimeSettingAdmin(ReadOnly):
    """Changed on /settings, where values are validated; listed here for the record."""

    list_display = ("name", "value", "updated_at", "updated_by")


@admin.register(LogLine)
class LogLineAdmin(ReadOnly):
    list_display = ("at", "level", "process", "pid", "correlation_id", "logger", "message")
    list_filter = ("level", "process")
    search_fields = ("correlation_id", "message")
    show_full_result_count = False
