"""Operator console for API keys: issue, revoke, see when each was last used."""

from django.contrib import admin, messages
from django.utils import timezone

from batchserver.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    fields = ("name", "prefix", "expires_at", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke_keys"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, raw = ApiKey.issue(obj.name, expires_at=obj.expires_at)
        obj.pk = key.pk
        obj.refresh_from_db()
        messages.warning(request, f"New API key (shown once, copy it now): {raw}")

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).")
