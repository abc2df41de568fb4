"""Operator console for API keys: issue, revoke, see when each was last used."""

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from batchserver import audit, net
from batchserver.models import ApiKey


class ApiKeyForm(forms.ModelForm):
    webhook_url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Default webhook URL for this key's batches.",
    )

    class Meta:
        model = ApiKey
        fields = ("name", "expires_at", "webhook_url")

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data.get("webhook_url", "")
        if url:
            try:
                net.check_url(url)
            except net.UnsafeURL as exc:
                raise forms.ValidationError(f"Not allowed: {exc}.") from None
        return url


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at", "webhook_secret")
    fields = (
        "name",
        "prefix",
        "expires_at",
        "created_at",
        "last_used_at",
        "revoked_at",
        "webhook_url",
        "webhook_secret",
    )
    actions = ["revoke_keys", "rotate_webhook_secrets"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, raw = ApiKey.issue(obj.name, expires_at=obj.expires_at)
        ApiKey.objects.filter(pk=key.pk).update(webhook_url=obj.webhook_url)
        obj.pk = key.pk
        obj.refresh_from_db()
        messages.warning(request, f"New API key (shown once, copy it now): {raw}")

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request, queryset):
        names = list(queryset.filter(revoked_at__isnull=True).values_list("prefix", flat=True))
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        ApiKey.forget_found()
        audit.record(request.user, "key.revoke", ", ".join(names)[:200])
        self.message_user(request, f"Revoked {count} key(s).")

    @admin.action(description="Rotate the webhook signing secret of selected keys")
    def rotate_webhook_secrets(self, request, queryset):
        for key in queryset:
            key.rotate_webhook_secret()
            audit.record(request.user, "key.rotate_webhook_secret", key.prefix)
        self.message_user(request, f"New webhook secrets for {queryset.count()} key(s).")
