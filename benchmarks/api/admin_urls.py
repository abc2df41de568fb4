"""The staff endpoints of the system we replace, at the root (``/admin/benchmarks/…``)."""

from django.urls import path

from benchmarks.api import views

urlpatterns = [
    path("admin/benchmarks/run", views.AdminRunView.as_view(), name="admin-benchmark-run"),
    path("admin/benchmarks/status/<int:run_id>", views.AdminStatusView.as_view()),
    path("admin/benchmarks/cancel/<int:run_id>", views.AdminCancelView.as_view()),
    path("admin/workbench/benchmark-history", views.AdminHistoryView.as_view()),
]
