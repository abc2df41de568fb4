"""What the database knows of plugins: their state, the registry's generation, their data.

Code is never stored here: a plugin is an installed package (or a file in the local plugins
folder). The database holds what an operator decides about it (enabled, settings), what the
guard observed (errors, an automatic disable and its reason), and a small key-value store for
plugins that need to remember something without migrations of their own.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


def new_token() -> str:
    return uuid.uuid4().hex


class PluginState(models.Model):
    """An operator's decisions about one plugin, and what its calls have done so far."""

    plugin_id = models.CharField(max_length=64, primary_key=True)
    enabled = models.BooleanField(default=False)
    settings = models.JSONField(default=dict, blank=True)
    # Set when the guard switched the plugin off; cleared when an operator enables it again.
    auto_disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.TextField(blank=True)
    error_count = models.PositiveBigIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "plugin"
        ordering = ["plugin_id"]

    def __str__(self) -> str:
        return f"{self.plugin_id} ({'enabled' if self.enabled else 'disabled'})"


class Generation(models.Model):
    """One row whose token changes with every change of any plugin's state or settings.

    Each web and worker process compares it with the token it last loaded, at most every
    ``PLUGINS_CHECK_SECONDS``: one primary-key read, never one per line or per request. A random
    token (not a counter) cannot come back to an old value after a rollback.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    token = models.CharField(max_length=32, default=new_token)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.token

    @classmethod
    def current(cls) -> str:
        return cls.objects.filter(pk=1).values_list("token", flat=True).first() or ""

    @classmethod
    def bump(cls) -> str:
        token = new_token()
        cls.objects.update_or_create(pk=1, defaults={"token": token, "changed_at": timezone.now()})
        return token


class PluginData(models.Model):
    """A plugin's own small records (JSON by key), e.g. which judge batch rated which batch."""

    plugin_id = models.CharField(max_length=64)
    key = models.CharField(max_length=200)
    value = models.JSONField(default=dict)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "plugin record"
        constraints = [
            models.UniqueConstraint(fields=["plugin_id", "key"], name="uniq_plugin_data_key")
        ]
        indexes = [models.Index(fields=["plugin_id", "-updated_at"])]

    def __str__(self) -> str:
        return f"{self.plugin_id}:{self.key}"
