"""The registry's staff endpoints at the root (``/admin/models/…``), before the admin's URLs."""

from django.urls import path

from models_registry.api import staff

urlpatterns = [
    path("admin/models/add", staff.AddModelView.as_view(), name="admin-model-add"),
    path("admin/models/add/<int:import_id>", staff.ImportStatusView.as_view()),
    path("admin/models/add/<int:import_id>/retry", staff.ImportRetryView.as_view()),
    path("admin/models/test", staff.TestModelView.as_view(), name="admin-model-test"),
    path("admin/models/test/<int:test_id>", staff.TestStatusView.as_view()),
    path("admin/models/variant", staff.VariantView.as_view(), name="admin-model-variant"),
    path("admin/models/state", staff.StateView.as_view(), name="admin-model-state"),
    path("admin/models/detail/<path:model_id>", staff.ModelStaffDetailView.as_view()),
]
