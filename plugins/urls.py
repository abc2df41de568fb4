"""The /plugins pages, mounted at the root; staff only, like the admin."""

from django.contrib import admin
from django.urls import path

from plugins import views

app_name = "plugins"


def staff(view):
    return admin.site.admin_view(view)


urlpatterns = [
    path("plugins", staff(views.index), name="index"),
    path("plugins/rescan", staff(views.rescan), name="rescan"),
    path("plugins/export/<str:format_id>", staff(views.export), name="export"),
    # Page names "enable" and "disable" are reserved by the manifest check for these two.
    path(
        "plugins/<str:plugin_id>/enable", staff(views.toggle), {"action": "enable"}, name="enable"
    ),
    path(
        "plugins/<str:plugin_id>/disable",
        staff(views.toggle),
        {"action": "disable"},
        name="disable",
    ),
    path("plugins/<str:plugin_id>/<str:page>", staff(views.plugin_page), name="page"),
]
