"""The console's own pages at the root: /, /dashboard, /settings, /config, /logs, /health."""

from django.contrib import admin
from django.urls import path
from django_prometheus import exports

from batchserver.operations import api, views

app_name = "console"


def staff(view):
    return admin.site.admin_view(view)


urlpatterns = [
    path("", staff(views.hub), name="hub"),
    path("dashboard", staff(views.dashboard), name="dashboard"),
    path("settings", staff(views.settings_page), name="settings"),
    path("settings/change", staff(views.change_setting), name="change-setting"),
    path("config", staff(views.config_page), name="config"),
    path("logs", staff(views.logs), name="logs"),
    path("health", views.health_view, name="health"),
    path("healthz", views.health_view, name="healthz"),
    path("api/browse/", api.Root.as_view(), name="browse"),
    path("api/browse/batches", api.Batches.as_view(), name="browse-batches"),
    path("api/browse/batches/<str:batch_id>", api.BatchDetail.as_view(), name="browse-batch"),
    path("api/browse/files", api.Files.as_view(), name="browse-files"),
    path("api/browse/webhooks", api.Webhooks.as_view(), name="browse-webhooks"),
    path("api/browse/workers", api.Workers.as_view(), name="browse-workers"),
    path("metrics", views.metrics_for_browsers(exports.ExportToDjangoView), name="metrics"),
]
