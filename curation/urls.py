"""The curation pages at their console paths (staff only)."""

from django.urls import path

from curation import views

urlpatterns = [
    path("workbench", views.workbench, name="workbench"),
    path("curation", views.curation, name="curation"),
    path("curation/files/<str:file_id>", views.download, name="curation-download"),
    path("enhanced-workbench", views.enhanced, name="enhanced-workbench"),
]
