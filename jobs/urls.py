"""The batch side's operator pages, mounted at the root (/queue, /history…), staff only."""

from django.contrib import admin
from django.urls import path

from jobs import views

app_name = "ops"


def staff(view):
    return admin.site.admin_view(view)


urlpatterns = [
    path("queue", staff(views.queue), name="queue"),
    path("history", staff(views.history), name="history"),
    path("workers", staff(views.workers), name="workers"),
    path("workers/restart", staff(views.restart_worker), name="restart-worker"),
    path("workers/reset-stuck", staff(views.reset_stuck), name="reset-stuck"),
    path("batches/<str:batch_id>", staff(views.batch), name="batch"),
    path("batches/<str:batch_id>/action", staff(views.batch_action), name="batch-action"),
    path("webhooks/<str:delivery_id>/replay", staff(views.replay_webhook), name="replay-webhook"),
]
