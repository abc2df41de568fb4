"""The operator pages, mounted at the root (/queue, /history…), staff-only like the admin."""

from django.contrib import admin
from django.urls import path

from jobs.pages import views

app_name = "ops"


def staff(view):
    return admin.site.admin_view(view)


urlpatterns = [
    path("queue", staff(views.queue), name="queue"),
    path("history", staff(views.history), name="history"),
    path("workers", staff(views.workers), name="workers"),
    path("batches/<str:batch_id>", staff(views.batch), name="batch"),
]
