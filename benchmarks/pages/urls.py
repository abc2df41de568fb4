"""The benchmark pages at their console paths (staff only)."""

from django.urls import path

from benchmarks.pages import views

urlpatterns = [
    path("benchmark-runner", views.runner, name="benchmark-runner"),
    path("model-comparison", views.comparison, name="model-comparison"),
    path("model-comparison/export.<str:fmt>", views.export, name="model-comparison-export"),
]
